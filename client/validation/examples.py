"""Careful checks of one example, with a stable code and a field path per problem.

These run on every line the fast path rejects, so they decide what is valid; they
also measure the example (roles, characters) for the statistics.
"""

from dataclasses import dataclass
from typing import Any

from client.validation.findings import FindingLog

CHAT_KEYS = {"messages", "tools"}
PROMPT_COMPLETION_KEYS = {"prompt", "completion"}
TEXT_KEYS = {"text"}
BASE_ROLES = ("system", "user", "assistant")


@dataclass(slots=True)
class Measured:
    """What the statistics need from one valid example."""

    roles: list[str]
    chars: int
    assistant_chars: int


def detect_format(obj: dict[str, Any]) -> str | None:
    if "messages" in obj:
        return "chat"
    if "prompt" in obj or "completion" in obj:
        return "prompt_completion"
    if "text" in obj:
        return "text"
    return None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _unknown_keys(obj: dict[str, Any], allowed: set[str], fmt: str, line: int, log: FindingLog):
    for key in obj:
        if key not in allowed:
            log.add(
                "unknown_key",
                f"unknown top-level key {key!r} for the {fmt} format "
                f"(allowed: {', '.join(sorted(allowed))})",
                line,
                key,
            )


def check_example(obj: dict[str, Any], fmt: str, line: int, log: FindingLog) -> Measured | None:
    """Checks one example in the file's format; returns its measure when it is valid."""
    before = log.total
    if fmt == "chat":
        measured = _check_chat(obj, line, log)
    elif fmt == "prompt_completion":
        _unknown_keys(obj, PROMPT_COMPLETION_KEYS, fmt, line, log)
        prompt = _check_text_field(obj, "prompt", line, log)
        completion = _check_text_field(obj, "completion", line, log)
        measured = Measured(
            ["prompt", "completion"], len(prompt) + len(completion), len(completion)
        )
    else:
        _unknown_keys(obj, TEXT_KEYS, fmt, line, log)
        text = _check_text_field(obj, "text", line, log)
        measured = Measured(["text"], len(text), len(text))
    return measured if log.total == before else None


def _check_text_field(obj: dict[str, Any], key: str, line: int, log: FindingLog) -> str:
    if key not in obj:
        log.add("missing_field", f"{key!r} is missing", line, key)
        return ""
    value = obj[key]
    if not isinstance(value, str):
        log.add("wrong_type", f"{key!r} must be a string, got {_type_name(value)}", line, key)
        return ""
    if not value.strip():
        log.add("empty_content", f"{key!r} is empty", line, key)
    return value


def _check_chat(obj: dict[str, Any], line: int, log: FindingLog) -> Measured | None:
    _unknown_keys(obj, CHAT_KEYS, "chat", line, log)
    has_tools = _check_tools(obj, line, log)
    if "messages" not in obj:
        log.add("missing_field", "'messages' is missing", line, "messages")
        return None
    messages = obj["messages"]
    if not isinstance(messages, list):
        log.add(
            "wrong_type",
            f"'messages' must be a list of message objects, got {_type_name(messages)}",
            line,
            "messages",
        )
        return None
    if not messages:
        log.add(
            "empty_messages", "'messages' is empty: an example needs messages", line, "messages"
        )
        return None
    roles: list[str] = []
    chars = assistant_chars = 0
    for index, message in enumerate(messages):
        path = f"messages[{index}]"
        if not isinstance(message, dict):
            log.add(
                "wrong_type", f"a message must be an object, got {_type_name(message)}", line, path
            )
            continue
        role = _check_role(message, has_tools, line, path, log)
        size = _check_content(message, role, line, path, log)
        if role == "assistant" and "tool_calls" in message:
            _check_tool_calls(message["tool_calls"], line, f"{path}.tool_calls", log)
        elif "tool_calls" in message:
            log.add(
                "bad_tool_calls",
                "only assistant messages may carry 'tool_calls'",
                line,
                f"{path}.tool_calls",
            )
        if "weight" in message:
            weight = message["weight"]
            if isinstance(weight, bool) or weight not in (0, 1):
                log.add(
                    "bad_weight", f"'weight' must be 0 or 1, got {weight!r}", line, f"{path}.weight"
                )
        if role is not None:
            roles.append(role)
        chars += size
        if role == "assistant":
            assistant_chars += size
    if "user" not in roles:
        log.add("no_user_message", "the example has no user message", line, "messages")
    if "assistant" not in roles:
        log.add("no_assistant_message", "the example has no assistant message", line, "messages")
    elif roles and len(roles) == len(messages) and roles[-1] != "assistant":
        log.add(
            "last_not_assistant",
            f"the last message must be from the assistant, not {roles[-1]!r}",
            line,
            f"messages[{len(messages) - 1}].role",
        )
    return Measured(roles, chars, assistant_chars)


def _check_tools(obj: dict[str, Any], line: int, log: FindingLog) -> bool:
    if "tools" not in obj:
        return False
    tools = obj["tools"]
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        log.add("bad_tools", "'tools' must be a list of tool objects", line, "tools")
        return False
    for index, tool in enumerate(tools):
        function = tool.get("function")
        if (
            tool.get("type") != "function"
            or not isinstance(function, dict)
            or not function.get("name")
        ):
            log.add(
                "bad_tools",
                'a tool needs "type": "function" and a function with a name',
                line,
                f"tools[{index}]",
            )
    return True


def _check_role(
    message: dict[str, Any], has_tools: bool, line: int, path: str, log: FindingLog
) -> str | None:
    if "role" not in message:
        log.add("missing_field", "the message has no 'role'", line, f"{path}.role")
        return None
    role = message["role"]
    allowed = (*BASE_ROLES, "tool") if has_tools else BASE_ROLES
    if role == "tool" and not has_tools:
        log.add(
            "bad_role",
            "'tool' messages need a top-level 'tools' list in the example",
            line,
            f"{path}.role",
        )
        return None
    if not isinstance(role, str) or role not in allowed:
        log.add(
            "bad_role",
            f"role {role!r} is not one of {', '.join(allowed)}",
            line,
            f"{path}.role",
        )
        return None
    return role


def _check_content(
    message: dict[str, Any], role: str | None, line: int, path: str, log: FindingLog
) -> int:
    """Checks the content and returns its length in characters."""
    field = f"{path}.content"
    calls_tools = role == "assistant" and bool(message.get("tool_calls"))
    if "content" not in message:
        if not calls_tools:
            log.add("missing_field", "the message has no 'content'", line, field)
        return 0
    content = message["content"]
    if content is None:
        if not calls_tools:
            log.add("empty_content", "'content' is null", line, field)
        return 0
    if isinstance(content, str):
        if not content.strip():
            log.add("empty_content", "'content' is empty", line, field)
        return len(content)
    if isinstance(content, list):
        return _check_parts(content, line, field, log)
    log.add(
        "wrong_type",
        f"'content' must be a string or a list of text parts, got {_type_name(content)}",
        line,
        field,
    )
    return 0


def _check_parts(parts: list[Any], line: int, field: str, log: FindingLog) -> int:
    """Content parts: only text parts, as in OpenAI's format: {"type": "text", "text": "..."}."""
    if not parts:
        log.add("empty_content", "'content' is an empty list", line, field)
        return 0
    size = 0
    for index, part in enumerate(parts):
        where = f"{field}[{index}]"
        if not isinstance(part, dict) or part.get("type") != "text":
            log.add(
                "bad_content",
                'only text parts are accepted: {"type": "text", "text": "..."}',
                line,
                where,
            )
            continue
        text = part.get("text")
        if not isinstance(text, str) or not text.strip():
            log.add("empty_content", "a text part needs a non-empty 'text'", line, f"{where}.text")
            continue
        size += len(text)
    return size


def _check_tool_calls(calls: Any, line: int, field: str, log: FindingLog) -> None:
    if not isinstance(calls, list) or not calls:
        log.add("bad_tool_calls", "'tool_calls' must be a non-empty list", line, field)
        return
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            log.add(
                "bad_tool_calls",
                "a tool call needs a function with a name and arguments",
                line,
                f"{field}[{index}]",
            )
