"""The examples a comparison runs: prompts and reference answers from a chat JSONL file.

Each line is one chat example as Nebius takes it (checked by the validator's own rules): the
prompt is every message before the last one, the reference is the last message, which the chat
format requires to be the assistant's.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.validation.examples import check_example, detect_format
from client.validation.findings import FindingLog
from client.validation.formats import format_name


class CompareDataError(ValueError):
    """The file cannot be compared on: says which file and line, and what is wrong."""


@dataclass(frozen=True)
class CompareExample:
    line: int  # 1-based line in the file
    prompt: list[dict[str, str]]  # the messages sent: role and text content only
    reference: str

    @property
    def question(self) -> str:
        """The last user message: what a person reads as "the prompt"."""
        users = [m["content"] for m in self.prompt if m["role"] == "user"]
        return users[-1] if users else ""


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def example_from(obj: Any, line: int, where: str) -> CompareExample:
    """One chat example; CompareDataError naming `where` and the line otherwise."""
    if not isinstance(obj, dict):
        raise CompareDataError(f"{where}:{line}: an example must be a JSON object")
    fmt = detect_format(obj)
    if fmt != "chat":
        raise CompareDataError(
            f"{where}:{line}: compare needs the chat format (`messages`); this line is "
            f"{format_name(fmt)}"
        )
    log = FindingLog(per_code=1)
    check_example(obj, "chat", line, log)
    if log.kept:
        first = log.kept[0]
        field = f" ({first.field})" if first.field else ""
        raise CompareDataError(f"{where}:{line}{field}: {first.message}")
    messages = obj["messages"]
    last = messages[-1]
    reference = _text(last.get("content"))
    if last.get("role") != "assistant" or not reference.strip():
        raise CompareDataError(
            f"{where}:{line}: the last message must be an assistant answer with text "
            "(the reference to score against)"
        )
    prompt = [{"role": str(m["role"]), "content": _text(m.get("content"))} for m in messages[:-1]]
    return CompareExample(line=line, prompt=prompt, reference=reference)


def read_examples(
    path: str | os.PathLike[str], *, limit: int | None = None
) -> list[CompareExample]:
    """The first `limit` examples of a chat JSONL file (all when None); blank lines are
    skipped. Raises CompareDataError for an unreadable file, bad JSON or a bad example."""
    file = Path(path)
    where = file.name
    examples: list[CompareExample] = []
    try:
        with file.open("rb") as stream:
            for number, raw in enumerate(stream, start=1):
                if limit is not None and len(examples) >= limit:
                    break
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise CompareDataError(f"{where}:{number}: not valid JSON ({exc})") from None
                examples.append(example_from(obj, number, where))
    except OSError as exc:
        raise CompareDataError(f"cannot read {file}: {exc.strerror or exc}") from None
    if not examples:
        raise CompareDataError(f"{where}: no examples to compare on")
    return examples
