"""Before serving, the bot asks Slack who it is: a bad token is a clear message, not a trace."""

import pytest

from bot.config import BotSettings
from bot.slack.runner import SlackStartError, check_slack
from tests.bot.fake_slack import BOT_TOKEN, FakeSlack


async def test_a_good_token_names_the_bot_and_workspace(fake_slack: FakeSlack) -> None:
    settings = BotSettings(slack_bot_token=BOT_TOKEN, slack_api_url=fake_slack.api_url)
    assert await check_slack(settings) == "Slack: connected as @xgenlens in Test"


async def test_a_refused_token_says_which_setting_to_fix(fake_slack: FakeSlack) -> None:
    settings = BotSettings(slack_bot_token="xoxb-revoked-999", slack_api_url=fake_slack.api_url)
    with pytest.raises(SlackStartError) as raised:
        await check_slack(settings)
    message = str(raised.value)
    assert "SLACK_BOT_TOKEN (invalid_auth)" in message
    assert "xoxb-revoked-999" not in message


async def test_an_unreachable_slack_says_so() -> None:
    settings = BotSettings(slack_bot_token=BOT_TOKEN, slack_api_url="http://127.0.0.1:9/api/")
    with pytest.raises(SlackStartError) as raised:
        await check_slack(settings)
    assert "could not reach Slack at http://127.0.0.1:9/api/" in str(raised.value)
