"""HTTP mode answers `/finetune` ahead of Bolt: same signature checks, same acknowledgement,
everything else still through Bolt."""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.config import BotSettings
from bot.listeners.commands.finetune import finetune_command
from bot.slack.app import build_slack_bot
from bot.slack.fast_ack import command_verifier, signed_command
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SIGNING_SECRET, SlackHarness, sign

FORM = "application/x-www-form-urlencoded"


def command_body(text: str = "help", command: str = "/finetune", **extra: str) -> str:
    fields = {"command": command, "text": text, "user_id": "U1", "channel_id": "C1"}
    return urlencode({"team_id": "T1", **fields, "trigger_id": "T-trigger-1", **extra})


def headers_for(body: str, **changes: str) -> dict[str, str]:
    return {"content-type": FORM, **{k.lower(): v for k, v in sign(body).items()}, **changes}


async def test_the_acknowledgement_is_the_one_bolt_gives(harness: SlackHarness) -> None:
    body = command_body()
    ours = await harness.post(body, FORM)
    bolt = await harness.slack.app.async_dispatch(
        AsyncBoltRequest(body=body, headers=headers_for(body))
    )
    await harness.bot.drain()
    assert (ours.status_code, ours.text) == (bolt.status, bolt.body) == (200, "")
    assert ours.headers["content-type"] == bolt.headers["content-type"][0]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Signature": "v0=" + "0" * 64},
        sign(command_body(), secret="another-apps-secret"),
        sign(command_body(), timestamp=int(time.time()) - 6 * 60),  # older than 5 minutes
    ],
    ids=["bad-signature", "wrong-secret", "stale-timestamp"],
)
async def test_a_command_that_fails_the_signature_check_is_refused(
    harness: SlackHarness, fake_slack: FakeSlack, headers: dict[str, str]
) -> None:
    response = await harness.post(command_body(), FORM, headers=headers)
    assert response.status_code == 401
    assert fake_slack.ephemerals == []


async def test_a_timestamp_that_is_not_a_number_is_refused_without_a_trace(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    response = await harness.post(
        command_body(), FORM, headers={"X-Slack-Request-Timestamp": "soon"}
    )
    assert response.status_code != 200
    assert "Traceback" not in response.text
    assert fake_slack.ephemerals == []


async def test_a_command_mentioning_payload_is_answered(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    # Bolt reads any form body containing "payload" as interactivity, and drops the command.
    response = await harness.command("frobnicate payload.jsonl")
    assert response.status_code == 200
    (answer,) = fake_slack.ephemerals_for("U1")
    assert "I don't know `frobnicate`" in answer["text"]


async def test_what_the_listener_acknowledges_with_is_the_answer(
    harness: SlackHarness,
) -> None:
    async def answering(ack: Any, command: dict[str, str], context: dict[str, Any]) -> None:
        assert context["bot"] is harness.bot
        await ack(f"you typed {command['text']}")

    harness.slack.command_listener = answering
    response = await harness.command("list")
    assert (response.status_code, response.text) == (200, "you typed list")


async def test_the_fast_route_gives_the_listener_every_argument_bolt_would(
    harness: SlackHarness,
) -> None:
    # Bolt hands a listener its arguments by name; the fast route passes its own few, so a
    # listener that asked for another (say `client`) would fail in HTTP mode alone.
    given: dict[str, Any] = {}

    async def recording(**arguments: Any) -> None:
        given.update(arguments)
        await arguments["ack"]()

    bolt_runs = [listener.ack_function for listener in harness.slack.app._async_listeners]
    assert harness.slack.command_listener is finetune_command and finetune_command in bolt_runs
    harness.slack.command_listener = recording
    await harness.command("help")
    assert set(inspect.signature(finetune_command).parameters) <= set(given)


async def test_a_failing_listener_answers_500_and_logs_the_trace(
    harness: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(**_: Any) -> None:
        raise RuntimeError("secret detail")

    harness.slack.command_listener = failing
    with caplog.at_level(logging.ERROR, logger="bot.slack.fast_ack"):
        response = await harness.command("help")
    assert (response.status_code, response.text) == (500, "")
    assert "secret detail" in caplog.text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (command_body(command="/other"), FORM),
        (command_body(ssl_check="1"), FORM),
        (urlencode({"payload": '{"type": "block_actions"}', "command": "/finetune"}), FORM),
        ('{"type": "event_callback", "command": "/finetune"}', "application/json"),
        (command_body(), "application/json"),
    ],
    ids=["other-command", "ssl-check", "interactivity", "event", "json-content-type"],
)
def test_only_signed_finetune_commands_skip_bolt(body: str, content_type: str) -> None:
    verifier = command_verifier(SIGNING_SECRET)
    headers = headers_for(body, **{"content-type": content_type})
    assert signed_command(body.encode(), headers, verifier) is None
    good = command_body()
    assert signed_command(good.encode(), headers_for(good), verifier) is not None
    assert signed_command(good.encode(), headers_for(good), None) is None


async def test_socket_mode_leaves_every_request_to_bolt(settings: BotSettings) -> None:
    socket_mode = settings.model_copy(update={"slack_app_token": SecretStr("xapp-1")})
    slack = build_slack_bot(socket_mode)
    assert slack.verifier is None
    assert command_verifier("") is None
    await slack.aclose()


def test_the_signing_secret_is_not_in_the_bots_repr(harness: SlackHarness) -> None:
    assert harness.slack.verifier is not None
    assert SIGNING_SECRET not in repr(harness.slack)


async def test_one_web_api_session_serves_every_call(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    await harness.slack.open()
    session = harness.slack.chat.client.session
    assert session is not None and session.timeout.total == harness.slack.chat.client.timeout
    await harness.command("help")
    await harness.command("help", user="U2")
    assert harness.slack.chat.client.session is session and not session.closed
    assert len(fake_slack.ephemerals) == 2
    await harness.slack.aclose()
    assert session.closed
