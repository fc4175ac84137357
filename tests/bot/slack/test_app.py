"""Building the Bolt app: quiet on start, and its Web API client pointed at SLACK_API_URL."""

import logging

import pytest

from bot.config import BotSettings
from bot.slack.app import build_slack_bot
from tests.bot.fake_slack import BOT_TOKEN, FakeSlack


async def test_no_warning_about_an_unused_token_when_the_environment_has_one(
    settings: BotSettings,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As when started by `make run`: Bolt also reads SLACK_BOT_TOKEN from the environment.
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    caplog.set_level(logging.DEBUG)
    slack = build_slack_bot(settings)
    try:
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        # The one client serves Bolt and the bot's own calls, against the configured Slack.
        assert slack.app.client is slack.chat.client
        assert slack.app.client.base_url == fake_slack.api_url
        await slack.open()
        assert (await slack.app.client.auth_test())["user"] == "xgenlens"
    finally:
        await slack.aclose()
