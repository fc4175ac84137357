"""Follows every watched job from one asyncio task: no thread per job.

Each poll of a job: one status request and one events request (more pages only after a
gap). New events go to the job's thread as few replies as Slack's limits allow (a burst is
coalesced; a long catch-up is split, in order), each carrying its first and last event id in
the message metadata. Every post to a thread goes through the store's outbox: the intent is
recorded before posting and the outcome after, and the watch's last event moves on only with
a post that Slack took. After a restart a watch resumes from the database; only a post left
pending (in flight at a crash) makes the watcher read that thread back from Slack
(`conversations.replies`, Tier 3: about 50 a minute), to see whether it got there. The card
is updated when the status changes and at most every CARD_EVERY_S otherwise; Slack's own
pacing is kept by the chat adapter.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.blocks.jobs import (
    job_card_message,
    job_events_replies,
    job_gone_message,
    job_summary_message,
)
from bot.chat import Chat, ChatError, Message, MessageRef
from bot.clock import Clock, RealClock
from bot.store import OutboxEntry, Store, Watch
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
            watch = await self._resolve_outbox(watch)
            state.last_event_id = watch.last_event_id
            state.reconciled = True
            if watch.done:  # its summary had reached the thread before the restart
                self._states.pop(watch.job_id, None)
                return
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
        for reply in job_events_replies(watch.job_id, new):
            # In order, one at a time: the next waits until the store has this one as posted.
            meta = reply.metadata or {}
            entry = self.store.outbox_intent(
                watch.job_id,
                "events",
                watch.channel,
                thread.ts,
                first_event_id=meta.get("first_event_id"),
                last_event_id=meta.get("last_event_id"),
            )
            await self._post(entry, reply, state)
            state.last_event_id = entry.last_event_id
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
        entry = self.store.outbox_intent(job.id, "summary", watch.channel, thread.ts)
        state = self._states.setdefault(job.id, _State())
        await self._post(entry, job_summary_message(job, checkpoints, watch.user_id), state)
        self.store.update_watch(job.id, status=job.status, done=True)
        self._states.pop(job.id, None)

    async def _post(self, entry: OutboxEntry, message: Message, state: _State) -> None:
        """Posts one outbox entry and records the outcome."""
        try:
            ref = await self.chat.post(entry.channel, message, thread_ts=entry.thread_ts)
        except ChatError:
            # Slack answered with a refusal: nothing was posted; the next poll tries again.
            self.store.outbox_discard(entry)
            raise
        except Exception:
            # No answer (a dropped connection, a timeout): it may have been posted, so the
            # next poll reads the thread back before posting anything more.
            state.reconciled = False
            raise
        self.store.outbox_done(entry, ref.ts)

    async def _resolve_outbox(self, watch: Watch) -> Watch:
        """Settles this job's posts that may have been in flight at a crash, and returns the
        watch as the store has it afterwards.

        With none pending (every watch but those few), nothing is read from Slack. Otherwise
        the thread is read back once: a pending post found there (by its metadata: job id,
        kind, last event id) is marked done and moves the watch on; the first one not found,
        and any after it, are dropped, so the poll posts them again from the watch's last
        recorded event.
        """
        pending = self.store.pending_outbox(watch.job_id)
        if not pending:
            return watch
        read = getattr(self.chat, "thread_metadata", None)
        # A chat that cannot read threads back (the console, whose earlier screen is gone):
        # post again rather than lose anything.
        posted: list[dict] = []
        if read is not None:
            # A ChatError here leaves the entries pending: the poll backs off and tries again.
            posted = await read(watch.channel, watch.thread_ts)
        found = True
        for entry in pending:
            found = found and any(_carries(m, entry) for m in posted)
            if found:
                self.store.outbox_done(entry, None)
            else:
                self.store.outbox_discard(entry)
        log.info(
            "job %s: %d post(s) in flight at the restart, %s",
            watch.job_id,
            len(pending),
            "all found in the thread" if found else "posting again what the thread lacks",
        )
        return self.store.watch(watch.job_id) or watch


def _carries(metadata: dict, entry: OutboxEntry) -> bool:
    """Whether a message's metadata is that of this outbox entry's post."""
    if metadata.get("job_id") != entry.job_id or metadata.get("kind") != entry.kind:
        return False
    return entry.kind != "events" or metadata.get("last_event_id") == entry.last_event_id
