"""Socket Mode over the fake Slack's WebSocket: the start-up URL is used, a cut link is noticed
and said in one line (and its return in another), a token revoked meanwhile stops the bot."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
from pydantic import SecretStr

from bot.config import BotSettings
from bot.slack.app import build_slack_bot
from bot.slack.serve import SlackStartError, check_slack, run_socket_mode
from bot.slack.socket_link import PING_INTERVAL_S, IssuedUrl
from tests.bot.fake_slack import APP_TOKEN, FakeSlack

# Short, so that a cut is noticed in well under a second; the bot's own is PING_INTERVAL_S.
PING = 0.5
LINK_LOG = "bot.slack.socket_link"


async def until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Waits for the bot to get somewhere (the limit only guards against a hang)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def socket_settings(settings: BotSettings) -> BotSettings:
    return settings.model_copy(
        update={"slack_app_token": SecretStr(APP_TOKEN), "slack_signing_secret": None}
    )


@pytest.fixture
async def serve(socket_settings: BotSettings) -> AsyncIterator[Callable[..., asyncio.Task[None]]]:
    """Starts run_socket_mode as a task (as the bot's main does); cancels it afterwards."""
    tasks: list[asyncio.Task[None]] = []

    def start(first_url: IssuedUrl | None = None) -> asyncio.Task[None]:
        slack = build_slack_bot(socket_settings)
        run = run_socket_mode(slack, socket_settings, first_url=first_url, ping_interval=PING)
        tasks.append(asyncio.ensure_future(run))
        return tasks[-1]

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def link_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LINK_LOG]


async def test_the_url_from_the_start_up_check_is_the_one_connected_to(
    fake_slack: FakeSlack, socket_settings: BotSettings, serve: Callable[..., asyncio.Task[None]]
) -> None:
    check = await check_slack(socket_settings)
    serve(check.socket_url)
    await until(lambda: len(fake_slack.open_links()) == 1, "the link opens")
    # apps.connections.open is Tier 1: the check's URL is not wasted on a second call.
    assert len(fake_slack.calls_to("apps.connections.open")) == 1


async def test_a_url_too_old_to_trust_is_replaced_by_a_fresh_one(
    fake_slack: FakeSlack, socket_settings: BotSettings, serve: Callable[..., asyncio.Task[None]]
) -> None:
    check = await check_slack(socket_settings)
    assert check.socket_url is not None
    old = IssuedUrl(check.socket_url.url, check.socket_url.issued_at - 3600)
    serve(old)
    await until(lambda: len(fake_slack.open_links()) == 1, "the link opens")
    assert len(fake_slack.calls_to("apps.connections.open")) == 2


async def test_a_cut_link_is_noticed_and_its_return_said_in_one_line_each(
    fake_slack: FakeSlack,
    serve: Callable[..., asyncio.Task[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LINK_LOG)
    caplog.set_level(logging.INFO, logger="slack_bolt")
    serve()
    await until(lambda: len(fake_slack.open_links()) == 1, "the link opens")
    await until(lambda: fake_slack.links[0].pings > 0, "the bot pings")
    caplog.clear()
    # The network goes: the link falls silent, and the first reconnect attempts find no Slack.
    fake_slack.connections_open_failures = 3
    fake_slack.cut_links()
    await until(lambda: len(fake_slack.open_links()) == 1, "a new link opens")
    await until(lambda: len(link_lines(caplog)) == 2, "the link says it is back")
    dropped, back = link_lines(caplog)
    assert dropped.startswith("Slack: the Socket Mode link dropped (No PONG received")
    assert dropped.endswith(f"reconnecting every {PING:g} s")
    assert back.startswith("Slack: the Socket Mode link is back (it was down ")
    # The failed attempts in between (a traceback each, from slack_sdk) are not in the log.
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text
    assert fake_slack.calls_to("apps.connections.open")[-1].token == APP_TOKEN


async def test_slacks_routine_refresh_is_not_a_drop(
    fake_slack: FakeSlack,
    serve: Callable[..., asyncio.Task[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LINK_LOG)
    serve()
    await until(lambda: len(fake_slack.open_links()) == 1, "the link opens")
    first = fake_slack.links[0]
    await first.ws.send_json({"type": "disconnect", "reason": "refresh_requested"})
    await until(lambda: first.ws.closed and len(fake_slack.open_links()) == 1, "it reconnects")
    assert link_lines(caplog) == []


async def test_an_app_token_revoked_while_running_stops_the_bot_with_the_fix(
    fake_slack: FakeSlack, serve: Callable[..., asyncio.Task[None]]
) -> None:
    task = serve()
    await until(lambda: len(fake_slack.open_links()) == 1, "the link opens")
    fake_slack.app_token = "xapp-a-new-one"
    fake_slack.cut_links()
    with pytest.raises(SlackStartError) as raised:
        await asyncio.wait_for(task, 30)
    message = str(raised.value)
    assert message.startswith("Slack refused SLACK_APP_TOKEN (invalid_auth) while reconnecting: ")
    assert "connections:write" in message
    assert APP_TOKEN not in message


def test_a_dead_link_is_noticed_within_seconds() -> None:
    # A ping after one quiet interval, the link dead when no pong comes within half of one,
    # and the SDK's monitor acting on it at its next look (each interval).
    assert PING_INTERVAL_S * 1.5 + PING_INTERVAL_S <= 5
