"""Recognising the format, keeping it consistent, and the other two formats."""

from pathlib import Path

from client.validation import format_name, render_report, validate_file

from .helpers import chat, write_lines


def test_prompt_completion_is_recognised(tmp_path: Path) -> None:
    rows = [{"prompt": f"a cat {i}", "completion": "a fluffy cat"} for i in range(3)]
    report = validate_file(write_lines(tmp_path / "pc.jsonl", rows))
    assert report.errors == []
    assert report.format == "prompt_completion"
    assert report.stats.examples == 3


def test_text_is_recognised(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "t.jsonl", [{"text": "one"}, {"text": "two"}]))
    assert report.errors == []
    assert report.format == "text"


def test_a_line_in_another_format_is_a_mismatch_naming_where_the_format_came_from(
    tmp_path: Path,
) -> None:
    report = validate_file(write_lines(tmp_path / "mix.jsonl", [chat(), {"text": "hello"}]))
    assert report.error_counts == {"format_mismatch": 1}
    finding = report.errors[0]
    assert finding.line == 2
    assert "line 1" in finding.message and "text" in finding.message


def test_the_format_is_taken_from_the_first_recognisable_line(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "late.jsonl", ["not json", {"text": "x"}]))
    assert report.format == "text"
    assert report.error_counts == {"invalid_json": 1}


def test_an_object_with_no_known_key_is_an_unknown_format(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "u.jsonl", [{"input": "a", "output": "b"}]))
    assert report.format is None
    assert report.error_counts == {"unknown_format": 1}
    assert "messages" in report.errors[0].message


def test_in_a_chat_file_a_line_with_no_known_key_is_missing_messages(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "c.jsonl", [chat(), {"input": "a"}]))
    codes = {(f.code, f.field) for f in report.errors}
    assert ("missing_field", "messages") in codes


def test_prompt_completion_unknown_key_and_empty_completion(tmp_path: Path) -> None:
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": " ", "label": 1}]
    report = validate_file(write_lines(tmp_path / "pc.jsonl", rows))
    assert {(f.code, f.field, f.line) for f in report.errors} == {
        ("unknown_key", "label", 2),
        ("empty_content", "completion", 2),
    }


def test_prompt_without_completion(tmp_path: Path) -> None:
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "a"}]
    report = validate_file(write_lines(tmp_path / "pc.jsonl", rows))
    assert [(f.code, f.field) for f in report.errors] == [("missing_field", "completion")]


def test_text_must_be_a_string(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "t.jsonl", [{"text": "a"}, {"text": ["a"]}]))
    assert [(f.code, f.field) for f in report.errors] == [("wrong_type", "text")]


def test_format_names_for_people() -> None:
    assert [format_name(f) for f in ("chat", "prompt_completion", "text")] == [
        "chat",
        "prompt/completion",
        "text",
    ]
    assert format_name("chat", with_key=True) == "chat (messages)"
    assert format_name("text", with_key=True) == "text"
    assert format_name(None) == format_name("csv") == "not recognised"


def test_the_report_names_the_format_or_says_it_is_not_recognised(tmp_path: Path) -> None:
    rows = [{"prompt": "a cat", "completion": "a fluffy cat"}]
    report = validate_file(write_lines(tmp_path / "pc.jsonl", rows))
    assert "format prompt/completion" in render_report(report)
    unknown = validate_file(write_lines(tmp_path / "u.jsonl", [{"input": "x"}]))
    assert "format not recognised" in render_report(unknown)
