"""`make run` / `xgenlens-bot`: picks console or Slack, says what it uses, never prints a secret."""

from pathlib import Path

import pytest

from bot.__main__ import main


def test_without_slack_tokens_it_runs_the_console_and_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NEBIUS_API_KEY", "nebius-secret-value")
    monkeypatch.setenv("NEBIUS_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-value")
    script = tmp_path / "script.txt"
    script.write_text("help\nquit\n")
    assert main(["--script", str(script)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        "Slack: none, console mode in this terminal "
        "(SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode) is not set)"
    )
    assert lines[1] == "Nebius: http://127.0.0.1:9/v1/ (key from NEBIUS_API_KEY)"
    assert "upload PATH" in out  # the console's help
    assert "secret-value" not in out


def test_a_bad_setting_is_named_without_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "not-a-port")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "http_port" in err and "Traceback" not in err
