"""`/finetune` in HTTP mode, acknowledged ahead of Bolt's request pipeline.

Slack wants each request acknowledged within 3 s, and a burst of commands queues on one
event loop. For a slash command Bolt's pipeline (its request object, a chain of middleware,
trying every registered listener, building the listener's arguments) costs more than the
listener itself, which only acknowledges and hands the command to the core. So HTTP mode
checks a `/finetune` request's signature here exactly as Bolt does (slack_sdk's
`SignatureVerifier`: HMAC-SHA256 of `v0:timestamp:body` with the signing secret, requests
more than 5 minutes old refused) and runs the same listener with Bolt's own `ack`.

Everything else goes to Bolt unchanged: events (and Slack's retried deliveries of them),
buttons, forms, ssl checks, other commands, and every request whose signature does not
verify, so that Bolt answers rejections as it always has.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qsl

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot.core import Bot

log = logging.getLogger(__name__)

COMMAND = "/finetune"
FORM = "application/x-www-form-urlencoded"

# A Bolt command listener: called with `ack`, `command` and `context` (see bot/listeners).
CommandListener = Callable[..., Awaitable[None]]


def signed_command(
    body: bytes, headers: Mapping[str, str], verifier: SignatureVerifier | None
) -> dict[str, str] | None:
    """The fields of a correctly signed `/finetune` request, as Bolt's `command` argument;
    None for any other request, which Bolt then handles (and rejects if it must)."""
    if verifier is None or b"command=" not in body:
        return None
    if headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        return None
    try:
        text = body.decode()
        fields = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        return None
    if fields.get("command") != COMMAND or "payload" in fields or "ssl_check" in fields:
        return None
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    try:
        valid = verifier.is_valid(text, timestamp, signature)
    except ValueError:  # a timestamp that is not a number
        valid = False
    return fields if valid else None


async def acknowledge_command(
    listener: CommandListener, command: dict[str, str], bot: Bot
) -> BoltResponse:
    """Runs the command's listener as Bolt would, and returns what it acknowledged with.

    Failures answer 500 with no body, as Bolt's default error handler does: the trace goes to
    the log, never to Slack.
    """
    ack = AsyncAck()
    try:
        await listener(ack=ack, command=command, context=AsyncBoltContext(bot=bot))
    except Exception:
        log.exception("the %s listener failed", COMMAND)
        return BoltResponse(status=500, body="")
    if ack.response is None:  # what Bolt answers when a command listener never acks
        return BoltResponse(status=404, body={"error": "unhandled request"})
    return ack.response


def command_verifier(signing_secret: str) -> SignatureVerifier | None:
    """None without a secret: then nothing is verified here, and Bolt sees every request."""
    return SignatureVerifier(signing_secret) if signing_secret else None
