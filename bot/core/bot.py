"""The bot's front door: adapters hand requests here and return at once.

Every method is synchronous and quick (it records and spawns); the work runs in the
background, so an adapter can acknowledge Slack well inside its three seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

from bot.blocks import mention_message
from bot.chat_interface import Chat, SharedFile
from bot.clock import Clock, RealClock
from bot.config import BotSettings
from bot.core.commands import CommandRunner
from bot.core.home import HomeBuilder, HomeSurface, HomeTab
from bot.core.requests import ButtonClick, CommandRequest, FormSubmission
from bot.core.tasks import Background
from bot.core.uploads import UploadHandler
from bot.core.watcher import Watcher
from bot.store import Store
from client import NebiusClient

log = logging.getLogger(__name__)


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
        self.uploads = UploadHandler(settings, store, chat, clock=clock)
        self.watcher = Watcher(store, chat, nebius, clock=clock) if nebius else None
        self.commands = CommandRunner(
            settings, store, chat, nebius, watcher=self.watcher, uploads=self.uploads, clock=clock
        )
        self._watching = False
        self.resolving: asyncio.Task[None] | None = None
        # The App Home: only a chat with a Home tab (Slack) publishes; the console prints it.
        self.home = HomeTab(
            HomeBuilder(store, nebius, chat, clock or RealClock()),
            chat if isinstance(chat, HomeSurface) else None,
            lambda work, name: self.background.spawn(work, name=name),
            clock=clock,
        )
        if self.watcher is not None:
            self.watcher.on_status_change = lambda watch: self.home.job_changed(watch.user_id)

    def start_watching(self) -> None:
        """Starts the watcher (once): it resumes every unfinished watch in the database."""
        if self.watcher is not None and not self._watching:
            self._watching = True
            # And those of a process that dies later, taken over by the watcher's ticks.
            self.watcher.resolve_starts = self.commands.resolve_interrupted_starts
            self.background.spawn(self.watcher.run(), name="watcher")
            # Job starts a crash interrupted: found on Nebius, or offered again (no waiting).
            self.resolving = self.background.spawn(
                self.commands.resolve_interrupted_starts(), name="interrupted starts"
            )
            # Deployments a restart interrupted: followed on until they settle.
            deployer = self.commands.custom_models.deployer
            if deployer is not None:
                self.background.spawn(deployer.resume(), name="unsettled deployments")

    async def claim_event(self, event_id: str | None) -> bool:
        """False for an event already handled, by this process or another sharing the
        database (Slack redelivers what it thinks was lost, maybe to another connection)."""
        return event_id is None or await self.store.claim_event(event_id)

    def file_shared(self, file: SharedFile, *, event_id: str | None = None) -> None:
        if not file.is_jsonl and not file.id_only:  # an id only may still be a .jsonl
            return
        claim = f"{event_id}:{file.id}" if event_id else None
        work = self._once(claim, self.uploads.handle(file))
        self.background.spawn(work, name=f"upload {file.id}")

    async def _once(self, event_id: str | None, work: Coroutine[object, None, object]) -> None:
        """Does an event's work unless the event was handled before (the claim is a database
        round trip, so it runs in the background too, not before the acknowledgement)."""
        if await self.claim_event(event_id):
            await work
        else:
            work.close()

    def command(self, request: CommandRequest) -> None:
        self.background.spawn(self.commands.run(request), name="command")

    def button(self, click: ButtonClick) -> None:
        self.background.spawn(self.commands.click(click), name=f"button {click.action_id}")

    def home_opened(self, user: str, *, event_id: str | None = None) -> None:
        """The person opened the bot's Home tab: it is rebuilt and published (debounced;
        a redelivered event is claimed like any other and does nothing)."""
        self.background.spawn(self._once(event_id, self._open_home(user)), name="home opened")

    async def _open_home(self, user: str) -> None:
        self.home.opened(user)

    def home_button(self, click: ButtonClick) -> None:
        """A button of the Home tab that acts on a job (Cancel)."""
        work = self.home.click(click, self.commands)
        self.background.spawn(work, name=f"home button {click.action_id}")

    def mentioned(
        self, *, channel: str, thread_ts: str, user: str | None, event_id: str | None = None
    ) -> None:
        self.background.spawn(
            self._once(
                event_id, self.chat.post(channel, mention_message(user), thread_ts=thread_ts)
            ),
            name="mention",
        )

    async def form_submitted(self, form: FormSubmission) -> dict[str, str]:
        """A submitted form: errors by block id (the form stays open), or {} and it starts."""
        errors, start = await self.commands.submitted_form(form)
        if start is not None:
            self.background.spawn(start, name="create from form")
        return errors

    async def drain(self) -> None:
        """Waits for all background work (tests, shutdown)."""
        await self.background.drain()

    async def aclose(self) -> None:
        await self.background.cancel_all()
        if self.nebius is not None:
            await self.nebius.aclose()
        await self.store.close()
