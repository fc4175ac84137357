"""The bot's front door: adapters hand requests here and return at once.

Every method is synchronous and quick (it records and spawns); the work runs in the
background, so an adapter can acknowledge Slack well inside its three seconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from bot.blocks import mention_message
from bot.blocks.forms import form_options
from bot.blocks.ids import Views
from bot.chat import Chat, SharedFile
from bot.clock import Clock
from bot.config import BotSettings
from bot.core.commands import CommandRunner
from bot.core.jobs import plan_from_form
from bot.core.tasks import Background
from bot.core.uploads import UploadHandler
from bot.core.watcher import Watcher
from bot.store import Store
from client import NebiusClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ButtonClick:
    """A click on one of the bot's buttons."""

    action_id: str
    value: str
    user: str
    channel: str
    message_ts: str | None = None
    thread_ts: str | None = None
    trigger_id: str | None = None
    # Clicked in a message only the clicker sees (it cannot be updated through chat.update).
    ephemeral: bool = False


@dataclass(frozen=True)
class CommandRequest:
    """One `/finetune ...` as typed, with who typed it where."""

    text: str
    user: str
    channel: str
    trigger_id: str | None = None


class Bot:
    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        chat: Chat,
        nebius: NebiusClient | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.chat = chat
        self.nebius = nebius
        self.background = Background()
        self.uploads = UploadHandler(settings, store, chat)
        self.watcher = Watcher(store, chat, nebius, clock=clock) if nebius else None
        self.commands = CommandRunner(
            settings, store, chat, nebius, watcher=self.watcher, uploads=self.uploads
        )
        self._watching = False
        self.resolving: asyncio.Task[None] | None = None

    def start_watching(self) -> None:
        """Starts the watcher (once): it resumes every unfinished watch in the database."""
        if self.watcher is not None and not self._watching:
            self._watching = True
            self.background.spawn(self.watcher.run(), name="watcher")
            # Job starts a crash interrupted: found on Nebius, or offered again (no waiting).
            self.resolving = self.background.spawn(
                self.commands.resolve_interrupted_starts(), name="interrupted starts"
            )

    def claim_event(self, event_id: str | None) -> bool:
        """False for an event already handled (Slack redelivers what it thinks was lost)."""
        return event_id is None or self.store.claim_event(event_id)

    def file_shared(self, file: SharedFile, *, event_id: str | None = None) -> None:
        if not file.is_jsonl and not file.id_only:  # an id only may still be a .jsonl
            return
        if not self.claim_event(f"{event_id}:{file.id}" if event_id else None):
            return
        self.background.spawn(self.uploads.handle(file), name=f"upload {file.id}")

    def command(self, request: CommandRequest) -> None:
        self.background.spawn(self.commands.run(request), name="command")

    def button(self, click: ButtonClick) -> None:
        self.background.spawn(self.commands.click(click), name=f"button {click.action_id}")

    def mentioned(
        self, *, channel: str, thread_ts: str, user: str | None, event_id: str | None = None
    ) -> None:
        if not self.claim_event(event_id):
            return
        self.background.spawn(
            self.chat.post(channel, mention_message(user), thread_ts=thread_ts), name="mention"
        )

    def form_submitted(
        self,
        *,
        callback_id: str,
        private_metadata: str,
        values: dict[str, dict[str, dict[str, Any]]],
        user: str,
        trigger_id: str | None = None,
        view_id: str | None = None,
    ) -> dict[str, str]:
        """A submitted form: errors by block id (the form stays open), or {} and it starts.

        `values` is shaped like Slack's `view.state.values`, from Slack or the console.
        """
        if callback_id != Views.CREATE_JOB:
            return {}
        try:
            channel = str(json.loads(private_metadata or "{}").get("channel", ""))
        except ValueError:
            channel = ""
        reason = self.settings.may_manage_jobs(user, channel)
        if reason:
            return {"model": f"Sorry, {reason}."}
        plan, errors = plan_from_form(
            self.store,
            channel,
            form_options(values),
            wandb_configured=self.settings.wandb_api_key is not None,
            profile=self.commands.range_profile,
        )
        if plan is None:
            return errors
        key = f"form:{view_id or trigger_id or uuid.uuid4()}"
        self.background.spawn(
            self.commands.start_from_form(plan, key=key, user=user, channel=channel),
            name="create from form",
        )
        return {}

    async def drain(self) -> None:
        """Waits for all background work (tests, shutdown)."""
        await self.background.drain()

    async def aclose(self) -> None:
        await self.background.cancel_all()
        if self.nebius is not None:
            await self.nebius.aclose()
        self.store.close()
