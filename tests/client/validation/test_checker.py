"""A file checked in parts through `FileCheck`'s public side reads as one pass over it.

This is the interface `parallel.py` uses across processes; here the parts run in this
process, so what is asserted is the merging itself.
"""

import io
import itertools
from pathlib import Path

from client.validation.checker import FileCheck

from .helpers import chat, write_lines

SETTINGS = {"max_bytes": 10**9, "context_length": 30, "max_line_bytes": 10**6}


def _in_parts(path: Path, cut_before: list[int]) -> FileCheck:
    """Checks the file as parts that start at the lines `cut_before` (and at line 1)."""
    lines = path.read_bytes().splitlines(keepends=True)
    firsts = [1, *cut_before, len(lines) + 1]
    parts = [
        (first, b"".join(lines[first - 1 : end - 1])) for first, end in itertools.pairwise(firsts)
    ]
    parent = FileCheck(path, "training", **SETTINGS)
    assert parent.learn_format(io.BytesIO(parts[0][1]))
    for first_line, data in parts:
        part = parent.part(first_line)
        part.scan(io.BytesIO(data), first_line=first_line)
        parent.merge(part.result())
    return parent


def test_parts_merged_in_order_report_what_one_pass_reports(tmp_path: Path) -> None:
    rows: list = [chat(f"prompt {i}", "answer " * (i % 9 + 1)) for i in range(60)]
    rows[5] = "not json"
    rows[25] = chat("prompt 3", "answer " * 4)  # repeats line 4, from another part
    rows[45] = chat("prompt 3", "answer " * 4)  # and again, from a third part
    rows[30] = ""
    rows[50] = {"text": "another format"}
    path = write_lines(tmp_path / "parts.jsonl", rows)

    one = FileCheck(path, "training", **SETTINGS)
    with path.open("rb") as stream:
        one.scan(stream)
    size = path.stat().st_size
    whole = one.report(size, expect_validation=True)
    merged = _in_parts(path, [21, 41]).report(size, expect_validation=True)

    assert merged.to_dict() == whole.to_dict()
    assert merged.stats.duplicates == 2
    assert [(w.line, w.message) for w in merged.warnings if w.code == "duplicate"] == [
        (26, "repeats the example on line 4"),
        (46, "repeats the example on line 4"),
    ]
    assert merged.stats.blank_lines == 1
    assert merged.error_counts == {"invalid_json": 1, "format_mismatch": 1}


def test_learning_the_format_keeps_nothing_else_from_those_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "late.jsonl", ["not json", [1, 2], chat(), chat("b")])
    checker = FileCheck(path, "validation", **SETTINGS)
    with path.open("rb") as stream:
        assert checker.learn_format(stream)
    assert checker.format == "chat"
    report = checker.report(path.stat().st_size, expect_validation=True)
    assert (report.error_counts, report.stats.examples) == ({"empty_file": 1}, 0)


def test_a_stream_without_a_recognisable_line_decides_no_format(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "none.jsonl", ["not json", {"other": 1}])
    checker = FileCheck(path, "training", **SETTINGS)
    with path.open("rb") as stream:
        assert not checker.learn_format(stream)
    assert checker.format is None
