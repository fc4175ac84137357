"""The chat format, message by message, with stable codes and field paths."""

from pathlib import Path
from typing import Any

import pytest

from client.validation import validate_file

from .helpers import chat, write_lines


def check_one(tmp_path: Path, example: Any):
    return validate_file(write_lines(tmp_path / "one.jsonl", [chat("first"), example]))


def only_error(report) -> tuple[str, str | None, int | None]:
    assert len(report.errors) == 1, report.errors
    finding = report.errors[0]
    return finding.code, finding.field, finding.line


def test_messages_as_a_dict_is_the_wrong_type(tmp_path: Path) -> None:
    report = check_one(tmp_path, {"messages": {"role": "user", "content": "hi"}})
    assert only_error(report) == ("wrong_type", "messages", 2)
    assert "got object" in report.errors[0].message


def test_messages_as_a_number_is_the_wrong_type(tmp_path: Path) -> None:
    report = check_one(tmp_path, {"messages": 3})
    assert only_error(report) == ("wrong_type", "messages", 2)
    assert "got number" in report.errors[0].message


def test_empty_messages(tmp_path: Path) -> None:
    assert only_error(check_one(tmp_path, {"messages": []})) == ("empty_messages", "messages", 2)


def test_a_message_without_content(tmp_path: Path) -> None:
    example = {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}
    assert only_error(check_one(tmp_path, example)) == (
        "missing_field",
        "messages[0].content",
        2,
    )


def test_content_null(tmp_path: Path) -> None:
    example = {
        "messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "x"}]
    }
    assert only_error(check_one(tmp_path, example)) == ("empty_content", "messages[0].content", 2)


def test_whitespace_only_content_is_empty(tmp_path: Path) -> None:
    example = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " \n"}]
    }
    assert only_error(check_one(tmp_path, example)) == ("empty_content", "messages[1].content", 2)


def test_content_as_a_number_is_the_wrong_type(tmp_path: Path) -> None:
    example = {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}
    assert only_error(check_one(tmp_path, example)) == ("wrong_type", "messages[0].content", 2)


def test_a_message_without_role(tmp_path: Path) -> None:
    example = {
        "messages": [
            {"content": "hi"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "x"},
        ]
    }
    assert only_error(check_one(tmp_path, example)) == ("missing_field", "messages[0].role", 2)


def test_role_bot_is_refused_with_the_allowed_roles(tmp_path: Path) -> None:
    example = {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}
    report = check_one(tmp_path, example)
    assert ("bad_role", "messages[1].role", 2) in [(f.code, f.field, f.line) for f in report.errors]
    bad_role = next(f for f in report.errors if f.code == "bad_role")
    assert "'bot'" in bad_role.message and "assistant" in bad_role.message


def test_no_assistant_message(tmp_path: Path) -> None:
    example = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    assert only_error(check_one(tmp_path, example)) == ("no_assistant_message", "messages", 2)


def test_no_user_message(tmp_path: Path) -> None:
    example = {
        "messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]
    }
    assert only_error(check_one(tmp_path, example)) == ("no_user_message", "messages", 2)


def test_the_last_message_must_be_the_assistants(tmp_path: Path) -> None:
    example = {
        "messages": [
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "again"},
        ]
    }
    assert only_error(check_one(tmp_path, example)) == (
        "last_not_assistant",
        "messages[2].role",
        2,
    )


def test_a_message_that_is_not_an_object(tmp_path: Path) -> None:
    example = {
        "messages": [
            "hello",
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"},
        ]
    }
    assert only_error(check_one(tmp_path, example)) == ("wrong_type", "messages[0]", 2)


@pytest.mark.parametrize("weight", [0, 1])
def test_weight_0_or_1_is_accepted(tmp_path: Path, weight: int) -> None:
    example = {
        "messages": [
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a", "weight": weight},
        ]
    }
    assert check_one(tmp_path, example).errors == []


@pytest.mark.parametrize("weight", [2, -1, 0.5, True, "1"])
def test_weight_other_than_0_or_1_is_refused(tmp_path: Path, weight: Any) -> None:
    example = {
        "messages": [
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a", "weight": weight},
        ]
    }
    assert only_error(check_one(tmp_path, example)) == ("bad_weight", "messages[1].weight", 2)


def test_an_unknown_top_level_key(tmp_path: Path) -> None:
    report = check_one(tmp_path, chat(metadata={"source": "web"}))
    assert only_error(report) == ("unknown_key", "metadata", 2)


def test_text_content_parts_are_accepted(tmp_path: Path) -> None:
    example = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a cat"}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "a fluffy"}, {"type": "text", "text": " cat"}],
            },
        ]
    }
    report = check_one(tmp_path, example)
    assert report.errors == []
    assert report.stats.examples == 2


def test_image_content_parts_are_refused(tmp_path: Path) -> None:
    example = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": "x"},
        ]
    }
    assert only_error(check_one(tmp_path, example)) == ("bad_content", "messages[0].content[0]", 2)


TOOLS = [{"type": "function", "function": {"name": "render", "parameters": {"type": "object"}}}]


def tool_example(**overrides: Any) -> dict[str, Any]:
    example = {
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "draw a cat"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "render", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
            {"role": "assistant", "content": "Here is your cat."},
        ],
    }
    example.update(overrides)
    return example


def test_tool_calls_with_tools_are_accepted(tmp_path: Path) -> None:
    report = check_one(tmp_path, tool_example())
    assert report.errors == []
    assert report.stats.role_counts["tool"] == 1


def test_a_tool_message_needs_tools(tmp_path: Path) -> None:
    example = tool_example()
    del example["tools"]
    report = check_one(tmp_path, example)
    assert ("bad_role", "messages[2].role") in [(f.code, f.field) for f in report.errors]


def test_tool_calls_must_name_a_function(tmp_path: Path) -> None:
    example = tool_example()
    example["messages"][1]["tool_calls"] = [{"id": "c1", "type": "function"}]
    assert only_error(check_one(tmp_path, example)) == (
        "bad_tool_calls",
        "messages[1].tool_calls[0]",
        2,
    )


def test_an_assistant_message_needs_content_or_tool_calls(tmp_path: Path) -> None:
    example = {"messages": [{"role": "user", "content": "u"}, {"role": "assistant"}]}
    assert only_error(check_one(tmp_path, example)) == ("missing_field", "messages[1].content", 2)


def test_many_errors_in_one_line_are_all_reported(tmp_path: Path) -> None:
    example = {"messages": [{"role": "bot", "content": ""}, {"role": "user", "content": None}]}
    report = check_one(tmp_path, example)
    fields = {(f.code, f.field) for f in report.errors}
    assert ("bad_role", "messages[0].role") in fields
    assert ("empty_content", "messages[0].content") in fields
    assert ("empty_content", "messages[1].content") in fields
