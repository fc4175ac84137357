"""`bot.console.main`: the first lines, the local engine started and stopped, scripts."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from bot.console import main


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "finetune-engine" and t.is_alive()]


def test_a_script_runs_against_the_local_engine_which_stops_with_the_bot(
    tmp_path: Path, isolated_environment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "demo.txt"
    script.write_text("/finetune models\n/finetune list\n")
    code = main(["--script", str(script), "--no-warm-worker"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Slack: none, console mode in this terminal (no Slack tokens are set)"
    assert lines[1].startswith("Nebius: the local engine at http://127.0.0.1:")
    assert f"engine data in {isolated_environment / 'engine'}" in lines[1]
    assert lines[2] == f"Database: {isolated_environment / 'bot.sqlite3'}"
    assert "xgenlens> /finetune models" in lines
    assert "        HuggingFaceTB/SmolLM2-135M-Instruct" in lines
    assert "No fine-tuning jobs yet." in out
    assert (isolated_environment / "engine" / "engine.db").is_file()
    assert engine_threads() == []


def test_a_nebius_key_means_no_local_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEBIUS_API_KEY", "sk-do-not-print-me")
    monkeypatch.setenv("NEBIUS_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    script = tmp_path / "demo.txt"
    script.write_text("help\n")
    assert main(["--script", str(script)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "Nebius: http://127.0.0.1:9/v1/ (key from NEBIUS_API_KEY)"
    assert "sk-do-not-print-me" not in out


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p / "none.txt", "does not exist"),
        (lambda p: p, "is a folder, not a file"),
        (lambda p: (p / "bin.txt", (p / "bin.txt").write_bytes(b"\xff\xfe"))[0], "not UTF-8"),
    ],
)
def test_an_unreadable_script_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, problem: str
) -> None:
    assert main(["--script", str(make(tmp_path))]) == 2
    assert problem in capsys.readouterr().err


def test_bad_configuration_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEBIUS_API_KEY", "k")
    monkeypatch.setenv("NEBIUS_BASE_URL", "ftp://nebius")
    assert main(["--script", "-"]) == 2
    assert "nebius_base_url" in capsys.readouterr().err


def test_piped_standard_input_runs_like_a_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("NEBIUS_API_KEY", "sk-piped")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a dataset")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"upload {notes}\nquit\n"))
    assert main([]) == 0
    out = capsys.readouterr().out
    assert f"xgenlens> upload {notes}" in out
    assert "(the bot checks .jsonl datasets only, so it leaves notes.txt alone)" in out
