"""Before serving, the bot asks Slack who it is and, in Socket Mode, opens a connection with the
app token: a bad or misplaced token is a clear message, not a trace."""

import pytest

from bot.config import BotSettings
from bot.slack.serve import SlackStartError, check_slack
from tests.bot.fake_slack import APP_TOKEN, BOT_TOKEN, FakeSlack


async def test_a_good_token_names_the_bot_and_workspace(fake_slack: FakeSlack) -> None:
    settings = BotSettings(slack_bot_token=BOT_TOKEN, slack_api_url=fake_slack.api_url)
    check = await check_slack(settings)
    assert check.line == "Slack: connected as @xgenlens in Test"
    assert check.socket_url is None  # HTTP mode: no app token to check
    assert fake_slack.calls_to("apps.connections.open") == []


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


def socket_settings(fake: FakeSlack, app_token: str, bot_token: str = BOT_TOKEN) -> BotSettings:
    return BotSettings(
        slack_bot_token=bot_token, slack_app_token=app_token, slack_api_url=fake.api_url
    )


async def test_socket_mode_opens_a_connection_with_the_app_token(fake_slack: FakeSlack) -> None:
    check = await check_slack(socket_settings(fake_slack, APP_TOKEN))
    assert check.line == "Slack: connected as @xgenlens in Test"
    assert check.socket_url is not None
    assert check.socket_url.url.startswith(fake_slack.base_url.replace("http", "ws"))
    [call] = fake_slack.calls_to("apps.connections.open")
    assert call.token == APP_TOKEN


async def test_a_refused_app_token_says_what_to_create(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackStartError) as raised:
        await check_slack(socket_settings(fake_slack, "xapp-1-revoked-777"))
    message = str(raised.value)
    assert message.startswith("Slack refused SLACK_APP_TOKEN (invalid_auth): ")
    assert "connections:write" in message and "App-Level Tokens" in message
    assert "xapp-1-revoked-777" not in message
    assert "while reconnecting" not in message


@pytest.mark.parametrize("code", ["ratelimited", "internal_error"])
async def test_a_passing_refusal_is_not_blamed_on_the_token(
    fake_slack: FakeSlack, code: str
) -> None:
    fake_slack.connections_open_error = code
    with pytest.raises(SlackStartError) as raised:
        await check_slack(socket_settings(fake_slack, APP_TOKEN))
    assert str(raised.value) == (
        f"Slack did not open a Socket Mode connection just now ({code}): "
        "start the bot again in a minute."
    )


@pytest.mark.parametrize(
    ("bot_token", "app_token", "expected"),
    [
        (BOT_TOKEN, BOT_TOKEN, "SLACK_APP_TOKEN holds the bot token (xoxb-...)"),
        (BOT_TOKEN, "secret-of-another-kind", "SLACK_APP_TOKEN holds no app-level token"),
        (APP_TOKEN, APP_TOKEN, "SLACK_BOT_TOKEN holds an app-level token (xapp-...)"),
    ],
    ids=["bot-token-as-app-token", "not-an-app-token", "app-token-as-bot-token"],
)
async def test_a_token_of_the_wrong_kind_is_named_before_any_call(
    fake_slack: FakeSlack, bot_token: str, app_token: str, expected: str
) -> None:
    with pytest.raises(SlackStartError) as raised:
        await check_slack(socket_settings(fake_slack, app_token, bot_token))
    message = str(raised.value)
    assert expected in message
    assert "secret-of-another-kind" not in message and "test-bot-token" not in message
    assert fake_slack.calls == []


async def test_both_tokens_swapped_are_both_named(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackStartError) as raised:
        await check_slack(socket_settings(fake_slack, BOT_TOKEN, APP_TOKEN))
    message = str(raised.value)
    assert "SLACK_BOT_TOKEN holds an app-level token" in message
    assert "SLACK_APP_TOKEN holds the bot token" in message
    assert fake_slack.calls == []
