"""A large file checked by several processes gives the same report as one pass."""

from pathlib import Path

import pytest

from client.validation import parallel, validate_file

from .helpers import chat, write_lines


def test_several_processes_report_exactly_what_one_pass_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used: list[bool] = []
    real_scan = parallel.scan
    monkeypatch.setattr(parallel, "scan", lambda *a: used.append(real_scan(*a)) or used[-1])
    rows: list = [chat(f"prompt {i}", "answer " * (i % 40 + 1)) for i in range(6000)]
    rows[10] = "not json"
    rows[3500] = {"messages": [{"role": "bot", "content": "x"}]}
    rows[5999] = chat("prompt 2", "answer " * 3)  # a duplicate across parts
    rows[2999] = chat("prompt 1", "answer " * 2)  # and another
    rows.insert(4000, "")
    train = write_lines(tmp_path / "train.jsonl", rows)
    val = write_lines(tmp_path / "val.jsonl", [chat("prompt 7", "answer " * 8), chat("new")])

    one = validate_file(train, validation_file=val, workers=1, context_length=20)
    many = validate_file(train, validation_file=val, workers=3, context_length=20)
    assert used == [True, True]  # both files really went through three processes

    assert many.to_dict() == one.to_dict()
    assert one.stats.duplicates == 2
    assert one.error_counts == {
        "invalid_json": 1,
        "bad_role": 1,
        "no_user_message": 1,
        "no_assistant_message": 1,
    }
    assert [f.line for f in one.errors if f.code == "bad_role"] == [3501]
    assert one.stats.validation_overlap == 1


def test_a_byte_order_mark_does_not_shift_where_later_parts_say_the_format_came_from(
    tmp_path: Path,
) -> None:
    rows: list = [chat(f"prompt {i}") for i in range(3000)]
    rows[2900] = {"text": "a line in another format, in the last part"}
    path = tmp_path / "bom.jsonl"
    write_lines(path, rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())

    one = validate_file(path, workers=1)
    many = validate_file(path, workers=3)

    mismatch = next(f for f in many.errors if f.code == "format_mismatch")
    assert (mismatch.line, "(from line 1)" in mismatch.message) == (2901, True)
    assert many.to_dict() == one.to_dict()
