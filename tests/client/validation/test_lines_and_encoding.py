"""Line-level checks: JSON, objects, UTF-8, BOM, blank lines, CRLF, long lines."""

from pathlib import Path

from client.validation import validate_file

from .helpers import chat, many, write_lines


def codes(report) -> dict[str, int]:
    return report.error_counts


def test_a_valid_chat_file_passes_and_says_its_format(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "ok.jsonl", many(60)))
    assert report.valid
    assert report.format == "chat"
    assert report.errors == []
    assert report.stats.examples == 60


def test_an_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = validate_file(path)
    assert not report.valid
    assert codes(report) == {"empty_file": 1}


def test_a_file_of_blank_lines_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\n  \n\r\n")
    assert codes(validate_file(path)) == {"empty_file": 1}


def test_a_bom_is_reported_as_such_and_the_line_still_checked(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    write_lines(path, many(2))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    report = validate_file(path)
    assert codes(report) == {"bom": 1}
    assert report.errors[0].line == 1
    assert "byte order mark" in report.errors[0].message
    assert report.stats.examples == 2


def test_a_bad_byte_reports_its_line_and_column(tmp_path: Path) -> None:
    good = '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}'
    bad = good.replace("yo", "y\udcff").encode("utf-8", "surrogateescape")
    report = validate_file(write_lines(tmp_path / "latin.jsonl", [good, good, bad]))
    assert codes(report) == {"bad_utf8": 1}
    (finding,) = report.errors
    assert finding.line == 3
    assert "0xff" in finding.message and "column" in finding.message


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    report = validate_file(
        write_lines(tmp_path / "bad.jsonl", [chat(), '{"messages": [', chat("b")])
    )
    assert codes(report) == {"invalid_json": 1}
    assert report.errors[0].line == 2


def test_a_json_array_line_is_not_an_object(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "arr.jsonl", [chat(), [chat()]]))
    assert codes(report) == {"not_an_object": 1}
    assert report.errors[0].line == 2
    assert "array" in report.errors[0].message


def test_trailing_blank_lines_and_blank_lines_between_are_accepted(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "gaps.jsonl", [chat("a"), "", "   ", chat("b"), "", ""])
    report = validate_file(path)
    assert report.errors == []
    assert report.stats.examples == 2
    assert report.stats.blank_lines == 4


def test_crlf_line_endings_are_accepted_and_line_numbers_stay_right(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "crlf.jsonl", [chat("a"), chat("b"), "nope"], newline="\r\n")
    report = validate_file(path)
    assert codes(report) == {"invalid_json": 1}
    assert report.errors[0].line == 3
    assert report.stats.examples == 2


def test_crlf_and_lf_copies_of_an_example_are_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    line = '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}'
    path.write_bytes(f"{line}\r\n{line}\n".encode())
    assert validate_file(path).stats.duplicates == 1


def test_a_file_without_a_trailing_newline_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "nonl.jsonl"
    write_lines(path, many(3))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    report = validate_file(path)
    assert report.errors == [] and report.stats.examples == 3


def test_a_20_mb_single_line_is_validated(tmp_path: Path) -> None:
    long_answer = "a detailed prompt " * (20 * 1024 * 1024 // 18)
    path = write_lines(tmp_path / "long.jsonl", [chat(answer=long_answer), chat("x")])
    assert path.stat().st_size > 20 * 1024 * 1024
    report = validate_file(path, context_length=8192)
    assert report.errors == []
    assert report.stats.examples == 2
    assert report.stats.over_context_length == 1
    assert report.warning_counts["too_long"] == 1
    assert report.stats.tokens.per_example_max > 5_000_000


def test_a_line_over_the_line_limit_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "huge.jsonl", [chat(), chat(answer="x" * 5000), chat("z")])
    report = validate_file(path, max_line_bytes=1000)
    assert codes(report) == {"line_too_long": 1}
    assert report.errors[0].line == 2
    assert report.stats.examples == 2


def test_lines_spanning_read_blocks_keep_their_numbers(tmp_path: Path) -> None:
    # Many lines of varied length cross the 1 MiB block boundary somewhere.
    rows = [chat(f"p{i}", "word " * (i % 500 + 1)) for i in range(2500)]
    rows[1999] = "broken"
    report = validate_file(write_lines(tmp_path / "blocks.jsonl", rows))
    assert codes(report) == {"invalid_json": 1}
    assert report.errors[0].line == 2000
    assert report.stats.examples == 2499


def test_a_file_over_the_size_limit_is_an_error(tmp_path: Path) -> None:
    report = validate_file(write_lines(tmp_path / "big.jsonl", many(10)), max_bytes=100)
    assert "file_too_large" in codes(report)
    assert not report.valid
