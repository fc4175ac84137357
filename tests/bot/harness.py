"""Drives the real Bolt app with properly signed HTTP requests, against the fake Slack."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.blocks.jobs import job_card_message
from bot.config import BotSettings
from bot.slack.app import SlackBot
from bot.slack.serve import http_app
from client import Job
from tests.bot.fake_slack import FakeSlack

SIGNING_SECRET = "test-signing-secret-123"


async def settle(before: set[asyncio.Task]) -> None:
    """Waits for Bolt's tasks started since `before`: it runs event listeners after acking.

    Only Bolt's: the fake server's keep-alive connection tasks never end by themselves.
    """
    while True:
        new = {t for t in asyncio.all_tasks() - before if _is_bolt(t)}
        if not new:
            return
        await asyncio.gather(*new, return_exceptions=True)
        before = before | new


def _is_bolt(task: asyncio.Task) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and "slack_bolt" in code.co_filename


def sign(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(timestamp if timestamp is not None else time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


@dataclass
class SlackHarness:
    fake: FakeSlack
    slack: SlackBot
    settings: BotSettings
    http: httpx.AsyncClient

    @classmethod
    def create(cls, fake: FakeSlack, settings: BotSettings, slack: SlackBot) -> SlackHarness:
        transport = httpx.ASGITransport(app=http_app(slack))
        http = httpx.AsyncClient(transport=transport, base_url="http://bot.test")
        return cls(fake=fake, slack=slack, settings=settings, http=http)

    @property
    def bot(self):
        return self.slack.bot

    async def post(
        self, body: str, content_type: str, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        sent = {"Content-Type": content_type, **sign(body), **(headers or {})}
        before = asyncio.all_tasks()
        response = await self.http.post("/slack/events", content=body, headers=sent)
        await settle(before)
        await self.bot.drain()
        return response

    async def command(
        self,
        text: str,
        *,
        user: str = "U1",
        channel: str = "C1",
        trigger_id: str = "T-trigger-1",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        body = urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": "T1",
                "channel_id": channel,
                "user_id": user,
                "command": "/finetune",
                "text": text,
                "trigger_id": trigger_id,
                "response_url": "https://hooks.slack.test/commands/1",
            }
        )
        return await self.post(body, "application/x-www-form-urlencoded", headers=headers)

    async def event(
        self, event: dict[str, Any], *, event_id: str = "Ev1", retry: int | None = None
    ) -> httpx.Response:
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": "T1",
                "api_app_id": "A1",
                "event_id": event_id,
                "event_time": int(time.time()),
                "event": event,
            }
        )
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(body, "application/json", headers=headers if retry else None)

    async def share_file(
        self,
        file: dict[str, Any],
        *,
        channel: str = "C1",
        user: str = "U1",
        ts: str = "1700000000.000001",
        event_id: str = "EvFile1",
    ) -> httpx.Response:
        return await self.event(
            {
                "type": "message",
                "subtype": "file_share",
                "channel": channel,
                "channel_type": "channel",
                "user": user,
                "text": "",
                "ts": ts,
                "files": [file],
            },
            event_id=event_id,
        )

    async def upload(
        self, name: str, content: bytes, *, file_id: str = "F1", **sharing: Any
    ) -> httpx.Response:
        """A person drops a file in a channel: `content` hosted on the fake Slack as `name`,
        then shared (`sharing`: as `share_file` takes it, C1 by U1 unless told otherwise)."""
        return await self.share_file(self.fake.host_file(file_id, name, content), **sharing)

    async def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U1",
        channel: str = "C1",
        message_ts: str | None = None,
        ephemeral: bool = False,
        trigger_id: str = "T-trigger-2",
    ) -> httpx.Response:
        """A button of a message in `channel` (of the message at `message_ts`)."""
        ts = message_ts or "1700000000.000009"
        return await self._interaction(
            "block_actions",
            user,
            trigger_id,
            channel={"id": channel},
            container={
                "type": "message",
                "message_ts": ts,
                "channel_id": channel,
                "is_ephemeral": ephemeral,
            },
            message={"ts": ts},
            actions=[button(action_id, value)],
        )

    async def click_in_home(
        self, action_id: str, value: str, *, user: str = "U1"
    ) -> httpx.Response:
        """A button of the Home tab: a view container, no channel."""
        return await self._interaction(
            "block_actions",
            user,
            "T-trigger-home",
            container={"type": "view", "view_id": "VHOME"},
            view={"id": "VHOME", "type": "home", "blocks": []},
            actions=[button(action_id, value)],
        )

    async def submit_view(
        self,
        view: dict[str, Any],
        values: dict[str, Any],
        *,
        user: str = "U1",
        view_id: str = "V1",
    ) -> httpx.Response:
        """Submits a modal the way Slack does: `view_submission` with `state.values`."""
        return await self._interaction(
            "view_submission",
            user,
            "T-trigger-3",
            view={**view, "id": view_id, "state": {"values": values}},
        )

    async def _interaction(
        self, kind: str, user: str, trigger_id: str, **fields: Any
    ) -> httpx.Response:
        """An interactivity payload (a click, a submission), posted as Slack posts it."""
        payload = {
            "type": kind,
            "team": {"id": "T1"},
            "user": {"id": user},
            "api_app_id": "A1",
            "trigger_id": trigger_id,
            **fields,
        }
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")

    async def follow_job(self, job_id: str, *, status: str = "queued", user: str = "U1") -> str:
        """What a start by `user` leaves: the job's card in C1 (showing `status`) and the watch
        that follows the job in the card's thread. The card's ts."""
        job = Job.model_validate({"id": job_id, "status": status})
        card = await self.bot.chat.post("C1", job_card_message(job))
        await self.bot.store.add_watch(job_id, "C1", card.ts, user)
        return card.ts

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.slack.aclose()


def button(action_id: str, value: str) -> dict[str, Any]:
    """A clicked button, as `block_actions` names it."""
    return {"type": "button", "action_id": action_id, "value": value, "block_id": "b1"}
