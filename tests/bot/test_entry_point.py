"""`make run` / `xgenlens-bot`: picks console or Slack, says what it uses, never prints a secret."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from bot.__main__ import main
from tests.bot.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack
from tests.conftest import REPO_ROOT


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


# -- Socket Mode, run as a service would run it: a subprocess, its output to pipes -------------

# Only guards against a hang: the bot gets there in a few seconds.
LIMIT_S = 90


def bot_env(fake: FakeSlack, app_token: str) -> dict[str, str]:
    env = dict(os.environ)  # the isolated test environment (its data folder, no secrets)
    # A service manager or a container does not set it; a developer's shell may.
    env.pop("PYTHONUNBUFFERED", None)
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=app_token,
        SLACK_API_URL=fake.api_url,
        # Nebius by key, so no local engine starts; nothing calls it before a command does.
        NEBIUS_API_KEY="nebius-secret-value",
        NEBIUS_BASE_URL="http://127.0.0.1:9/v1",
    )
    return env


async def start_bot(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop(bot: asyncio.subprocess.Process) -> tuple[str, str]:
    if bot.returncode is None:
        bot.terminate()
    out, err = await asyncio.wait_for(bot.communicate(), LIMIT_S)
    return out.decode(), err.decode()


async def test_the_first_lines_show_at_once_through_a_pipe(fake_slack: FakeSlack) -> None:
    bot = await start_bot(bot_env(fake_slack, APP_TOKEN))
    try:
        assert bot.stdout is not None
        # Read while the bot runs: block-buffered, they would only come at its exit.
        first = [
            (await asyncio.wait_for(bot.stdout.readline(), LIMIT_S)).decode().rstrip("\n")
            for _ in range(4)
        ]
        assert bot.returncode is None
    finally:
        out, err = await stop(bot)
    assert first[0] == "Slack: connected as @xgenlens in Test"
    assert first[1] == f"Slack: Socket Mode ({fake_slack.api_url})"
    assert first[2] == "Nebius: http://127.0.0.1:9/v1/ (key from NEBIUS_API_KEY)"
    assert first[3].startswith("Database: ") and first[3].endswith("bot.sqlite3")
    # The app token was checked with one apps.connections.open, whose URL the link then used.
    assert len(fake_slack.calls_to("apps.connections.open")) == 1
    # No noise on start: no warning from Bolt about a token it would not use, no traceback.
    assert "will be unused" not in err and "Traceback" not in err
    assert "secret-value" not in out + err and BOT_TOKEN not in out + err


async def test_a_refused_app_token_stops_the_bot_with_the_fix(fake_slack: FakeSlack) -> None:
    bot = await start_bot(bot_env(fake_slack, "xapp-1-revoked-token"))
    try:
        code = await asyncio.wait_for(bot.wait(), LIMIT_S)
    finally:
        out, err = await stop(bot)
    assert code == 1
    assert out == ""  # nothing said about Slack before both tokens are checked
    assert err.splitlines() == [
        "xgenlens-bot: Slack refused SLACK_APP_TOKEN (invalid_auth): create an app-level token "
        "with the connections:write scope (Basic Information > App-Level Tokens) and set "
        "SLACK_APP_TOKEN to it (xapp-...)."
    ]
    assert len(fake_slack.calls_to("apps.connections.open")) == 1


@pytest.mark.parametrize(
    ("bot_token", "app_token", "expected"),
    [
        ("xoxb-secret-value", "xoxb-secret-value", "SLACK_APP_TOKEN holds the bot token"),
        ("xapp-secret-value", "xapp-secret-value", "SLACK_BOT_TOKEN holds an app-level token"),
    ],
    ids=["bot-token-in-app-token", "app-token-in-bot-token"],
)
def test_a_token_in_the_wrong_variable_is_named(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    bot_token: str,
    app_token: str,
    expected: str,
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", bot_token)
    monkeypatch.setenv("SLACK_APP_TOKEN", app_token)
    # Nothing listens here: had a call been made, the message would say Slack is unreachable.
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")
    assert main([]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("xgenlens-bot: ") and expected in captured.err
    assert "Traceback" not in captured.err and "secret-value" not in captured.err
