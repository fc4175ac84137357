"""Follows every watched job from one asyncio task: no thread per job.

Each poll of a job: one status request and one events request (more pages only after a
gap). New events go to the job's thread as ONE reply (a burst is coalesced), carrying the
last event id in the message metadata; the store records it after posting. After a restart
the first poll of a job reads that metadata back from the thread, so an event posted just
before a crash is not posted again. The card is updated when the status changes and at most
every CARD_EVERY_S otherwise; Slack's own limits are kept by the chat adapter.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.blocks.jobs import (
    job_card_message,
    job_events_reply,
    job_gone_message,
    job_summary_message,
)
from bot.chat import Chat, ChatError, MessageRef
from bot.clock import Clock, RealClock
from bot.store import Store, Watch
from client import Job, NebiusClient, NebiusError, NotFoundError

log = logging.getLogger(__name__)

# Poll intervals adapt to the state: a running job changes often, a queued one rarely.
POLL_S = {"running": 10.0, "validating_files": 15.0, "queued": 30.0}
DEFAULT_POLL_S = 20.0
CARD_EVERY_S = 30.0
ERROR_BACKOFF_S = (15.0, 30.0, 60.0, 120.0, 300.0)
CONCURRENT_POLLS = 32
TICK_S = 1.0


@dataclass
class _State:
    due: float = 0.0
    card_shown_at: float = -1e9
    status: str | None = None
    errors: int = 0
    reconciled: bool = False
    last_event_id: str | None = None
    shown: tuple[object, ...] = ()


class Watcher:
    def __init__(
        self,
        store: Store,
        chat: Chat,
        nebius: NebiusClient,
        *,
        clock: Clock | None = None,
        poll_s: dict[str, float] | None = None,
    ) -> None:
        self.store = store
        self.chat = chat
        self.nebius = nebius
        self.clock = clock or RealClock()
        self.poll_s = {**POLL_S, **(poll_s or {})}
        self._states: dict[str, _State] = {}
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENT_POLLS)
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self.polls = 0

    def wake(self) -> None:
        """A new watch was added: look at it now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        """Polls forever (until cancelled)."""
        try:
            while True:
                self._wake.clear()
                next_due = self.schedule_due()
                # At most TICK_S: polls finishing meanwhile fall due again without a wake-up.
                wait = next_due - self.clock.monotonic() if next_due else TICK_S
                delay = min(TICK_S, max(0.05, wait))
                sleeper = asyncio.ensure_future(self.clock.sleep(delay))
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
                    waker.cancel()
        finally:
            tasks = list(self._inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def schedule_due(self) -> float | None:
        """Starts polling every due watch not already being polled, each in its own task,
        so one slow channel (Slack's 1/s limit) never holds back the others. Returns when
        the next idle watch falls due (None: none)."""
        now = self.clock.monotonic()
        watches = self.store.active_watches()
        live = {w.job_id for w in watches}
        for job_id in list(self._states):
            if job_id not in live and job_id not in self._inflight:
                del self._states[job_id]
        for watch in watches:
            state = self._states.setdefault(watch.job_id, _State())
            if watch.job_id not in self._inflight and state.due <= now:
                task = asyncio.create_task(self._poll_guarded(watch))
                self._inflight[watch.job_id] = task
                task.add_done_callback(lambda _, job_id=watch.job_id: self._done(job_id))
        idle = [s.due for j, s in self._states.items() if j not in self._inflight]
        return min(idle) if idle else None

    def _done(self, job_id: str) -> None:
        self._inflight.pop(job_id, None)

    async def poll_due(self) -> float | None:
        """Polls every due watch and waits for those polls (one round; tests, tools)."""
        self.schedule_due()
        while self._inflight:
            await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)
        idle = [s.due for s in self._states.values()]
        return min(idle) if idle else None

    async def _poll_guarded(self, watch: Watch) -> None:
        state = self._states[watch.job_id]
        try:
            await self.poll(watch)
            state.errors = 0
        except (NebiusError, ChatError) as error:
            # Back off per job; the others carry on.
            delay = ERROR_BACKOFF_S[min(state.errors, len(ERROR_BACKOFF_S) - 1)]
            state.errors += 1
            state.due = self.clock.monotonic() + delay
            log.warning("watching %s failed (%s); retry in %.0fs", watch.job_id, error, delay)
        except Exception:
            state.due = self.clock.monotonic() + ERROR_BACKOFF_S[-1]
            log.exception("watching %s failed unexpectedly", watch.job_id)

    async def poll(self, watch: Watch) -> None:
        """One look at one job: status, new events, card, and the summary at the end."""
        state = self._states.setdefault(watch.job_id, _State())
        self.polls += 1
        thread = MessageRef(watch.channel, watch.thread_ts)
        card = MessageRef(watch.channel, watch.card_ts or watch.thread_ts)
        if not state.reconciled:
            state.last_event_id = await self._reconcile(watch)
            state.reconciled = True
        # The slots bound concurrent Nebius requests only; waiting on Slack holds none.
        async with self._slots:
            try:
                job = await self.nebius.retrieve_job(watch.job_id)
            except NotFoundError:
                job = None
            if job is not None:
                new = [
                    e
                    async for e in self.nebius.iter_events(
                        watch.job_id, after_event_id=state.last_event_id
                    )
                ]
        if job is None:
            await self.chat.update(card, job_gone_message(watch.job_id))
            self.store.update_watch(watch.job_id, status="gone", done=True)
            return
        if new:
            await self.chat.post(
                watch.channel, job_events_reply(watch.job_id, new), thread_ts=thread.ts
            )
            state.last_event_id = new[-1].id
            self.store.update_watch(watch.job_id, last_event_id=new[-1].id)
        now = self.clock.monotonic()
        shown = (job.status, job.trained_steps, job.total_steps, job.estimated_finish)
        # A new status shows at once; progress alone at most every CARD_EVERY_S.
        if (
            not job.is_terminal
            and shown != state.shown
            and (job.status != state.status or now - state.card_shown_at >= CARD_EVERY_S)
        ):
            await self.chat.update(card, job_card_message(job))
            state.card_shown_at = now
            state.shown = shown
        if job.status != state.status:
            state.status = job.status
            self.store.update_watch(watch.job_id, status=job.status)
        if job.is_terminal:
            await self._finish(watch, job, thread)
            return
        state.due = now + self.poll_s.get(job.status, DEFAULT_POLL_S)

    async def _finish(self, watch: Watch, job: Job, thread: MessageRef) -> None:
        checkpoints = []
        if job.status == "succeeded":
            checkpoints = await self.nebius.list_checkpoints(job.id)
        await self.chat.update(
            MessageRef(watch.channel, watch.card_ts or watch.thread_ts), job_card_message(job)
        )
        await self.chat.post(
            watch.channel,
            job_summary_message(job, checkpoints, watch.user_id),
            thread_ts=thread.ts,
        )
        self.store.update_watch(job.id, status=job.status, done=True)
        self._states.pop(job.id, None)

    async def _reconcile(self, watch: Watch) -> str | None:
        """The last event id the thread itself shows, when newer than the store's record.

        Covers a crash between posting events and recording them.
        """
        read = getattr(self.chat, "thread_metadata", None)
        if read is None:
            return watch.last_event_id
        try:
            metadata = await read(watch.channel, watch.thread_ts)
        except ChatError:
            return watch.last_event_id
        posted = [
            m["last_event_id"]
            for m in metadata
            if m.get("job_id") == watch.job_id and m.get("last_event_id")
        ]
        if posted and posted[-1] != watch.last_event_id:
            self.store.update_watch(watch.job_id, last_event_id=posted[-1])
            return posted[-1]
        return watch.last_event_id
