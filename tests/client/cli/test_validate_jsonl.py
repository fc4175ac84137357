"""The `validate-jsonl` command: reports, JSON, exit codes, and no tracebacks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from client.cli.validate_jsonl import main

from ..validation.helpers import chat, many, write_lines


def test_a_valid_file_exits_0_with_a_readable_report(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "train.jsonl", many(60))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "valid, format chat" in out
    assert "60 examples" in out


def test_an_invalid_file_exits_1(tmp_path: Path, capsys) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [chat(), "nope"])
    assert main([str(path)]) == 1
    assert "line 2: invalid JSON" in capsys.readouterr().out


def test_a_missing_file_exits_2_with_a_message(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "absent.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "absent.jsonl" in err and "No such file" in err


def test_a_folder_is_unreadable(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["x.jsonl", "--context-length", "zero"])
    assert exit_info.value.code == 2


def test_json_output_for_several_files_with_a_validation_file(tmp_path: Path, capsys) -> None:
    good = write_lines(tmp_path / "good.jsonl", many(60))
    bad = write_lines(tmp_path / "bad.jsonl", [chat(), "[1]"])
    val = write_lines(tmp_path / "val.jsonl", [many(60)[0]])
    assert main([str(good), str(bad), "--validation", str(val), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is False
    first, second = data["files"]
    assert first["valid"] is True and first["stats"]["validation_overlap"] == 1
    assert second["error_counts"] == {"not_an_object": 1}
    assert second["validation"]["role"] == "validation"


def test_the_console_script_runs_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\xff\xfe garbage\n")
    done = subprocess.run(
        [sys.executable, "-m", "client.cli.validate_jsonl", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "bad_utf8" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
