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

Several processes may share one database: each polls only the watches it holds. A task of
its own renews the lease every third of the lease (on a connection of its own: polls cannot
hold it back), and each tick takes its fair share of the watches no live process holds (new
ones, or those of a process that died), so a dead process's jobs are resumed by the others
within the lease, a grace and a tick, from the database as it left them. Right before each
post goes out (after Slack's pacing) a fence checks that the lease is still fresh: a process
whose renewals stalled drops the post and lets the watch go, rather than post what the
process taking over posts too (`Store.lease_fresh`; the grace covers a post already sent).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.blocks.jobs import (
    job_card_message,
    job_gone_message,
    job_summary_message,
)
from bot.chat_interface import (
    Chat,
    ChatError,
    Message,
    MessageRef,
    PostFenced,
    check_post_fence,
    post_fence,
)
from bot.clock import Clock, RealClock
from bot.core.charts import chart_at_end
from bot.core.costs import Costs
from bot.core.notify import channel_mode, event_posts, summary_mention
from bot.core.retry_links import job_links
from bot.store import LeaseLost, OutboxEntry, Store, Watch
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
        self.costs = Costs(store, nebius)
        self.clock = clock or RealClock()
        self.poll_s = {**POLL_S, **(poll_s or {})}
        self._states: dict[str, _State] = {}
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENT_POLLS)
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self.polls = 0
        self._renew_at = -1e18
        self._renewals = 0
        # The lease renewer while `run` runs; without it (`poll_due`) each round renews.
        self._renewer: asyncio.Task[None] | None = None
        self.lapses = 0  # renewals that found the lease lapsed (figures for the benchmarks)
        self.fenced = 0  # posts dropped by the fence
        self.longest_renewal_gap_s = 0.0  # between two renewals' starts (for the benchmarks)
        self._renewed_at: float | None = None
        # Resolves the job starts that dead processes left in flight (the bot sets it); run
        # at each renewal after the first, so a live process takes them within about a lease.
        self.resolve_starts: Callable[[], Awaitable[None]] | None = None
        self.resolving: asyncio.Task[None] | None = None
        # Told of each job's change of state (the bot refreshes its starter's App Home); quick.
        self.on_status_change: Callable[[Watch], None] | None = None

    def wake(self) -> None:
        """A new watch was added: look at it now rather than at the next tick."""
        self._wake.set()

    async def run(self) -> None:
        """Polls forever (until cancelled), the lease renewed from a task of its own."""
        renewer = self._renewer = asyncio.create_task(self._keep_lease())
        try:
            while True:
                self._wake.clear()
                try:
                    next_due = await self.schedule_due()
                except Exception:
                    # The database unreachable for a moment: the polls under way go on, and
                    # the next tick tries again.
                    log.exception("reading the watches failed; trying again")
                    next_due = None
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
            tasks = [renewer, *self._inflight.values()]
            self._renewer = None
            if self.resolving is not None:
                tasks.append(self.resolving)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep_lease(self) -> None:
        """The lease renewer: renews every `renew_every_s`, whatever the polls are doing.

        It sleeps at most a tick at a time, as the tick does: a fake clock moves on with
        each sleep (tests), and a renewal late by a tick is still far within the lease."""
        while True:
            if self.clock.monotonic() >= self._renew_at:
                try:
                    await self.renew_lease()
                except Exception:
                    # The database unreachable for a moment: tried again at the next tick
                    # (meanwhile the fence stops posts once the lease is too old).
                    log.exception("renewing this process's lease failed; trying again")
                    self._renew_at = self.clock.monotonic() + TICK_S
            wait = self._renew_at - self.clock.monotonic()
            await self.clock.sleep(min(TICK_S, max(0.05, wait)))

    async def renew_lease(self) -> None:
        """Renews this process's lease now (and resolves dead processes' starts)."""
        now = self.clock.monotonic()
        if self._renewed_at is not None:
            self.longest_renewal_gap_s = max(self.longest_renewal_gap_s, now - self._renewed_at)
        self._renew_at, self._renewed_at = now + self.store.renew_every_s, now
        self._renewals += 1
        if not await self.store.renew_session():
            # It had lapsed (a stall): others may have taken some watches and posted in
            # their threads meanwhile, so each one still held is read back afresh (and the
            # posts recorded before are not sent: the store's lease epoch moved on).
            self.lapses += 1
            log.warning("this process's lease had lapsed; rereading its watches")
            for state in self._states.values():
                state.reconciled = False
        if self._renewals > 1:  # the first one's are the bot's start-up work
            self._resolve_starts_soon()

    async def _keep_leases(self, now: float) -> None:
        """Renews the lease when due if no renewer runs (`poll_due`), and brings this process
        to its share of the watches: it takes free ones, or hands back what it holds beyond
        its share once another process has started (not those it is polling now)."""
        if (self._renewer is None or self._renewer.done()) and now >= self._renew_at:
            await self.renew_lease()
        taken, handed_back = await self.store.rebalance_watches(busy=set(self._inflight))
        for watch in taken:
            # A watch taken over starts from the database, as its last holder left it.
            if watch.job_id not in self._inflight:
                self._states.pop(watch.job_id, None)
        for job_id in handed_back:
            self._states.pop(job_id, None)

    async def schedule_due(self) -> float | None:
        """Starts polling every due watch this process holds and is not polling already,
        each in its own task, so one slow channel (Slack's 1/s limit) never holds back the
        others. Returns when the next idle watch falls due (None: none)."""
        now = self.clock.monotonic()
        await self._keep_leases(now)
        watches = await self.store.held_watches()
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

    def _resolve_starts_soon(self) -> None:
        """Starts resolving the starts of dead processes in the background (one at a time:
        the store claims each start for one process, so a slow round is never doubled)."""
        if self.resolve_starts is None or (self.resolving and not self.resolving.done()):
            return
        self.resolving = asyncio.create_task(self._resolve_guarded(self.resolve_starts))

    async def _resolve_guarded(self, resolve: Callable[[], Awaitable[None]]) -> None:
        try:
            await resolve()
        except Exception:
            # The database unreachable for a moment: the next renewal tries again.
            log.exception("resolving interrupted job starts failed; trying again later")

    async def poll_due(self) -> float | None:
        """Polls every due watch and waits for those polls (one round; tests, tools)."""
        await self.schedule_due()
        while self._inflight:
            await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)
        if self.resolving is not None:
            await self.resolving
        idle = [s.due for s in self._states.values()]
        return min(idle) if idle else None

    async def _poll_guarded(self, watch: Watch) -> None:
        state = self._states[watch.job_id]
        try:
            await self.poll(watch)
            state.errors = 0
        except LeaseLost:
            # Another process holds it now (this one's lease lapsed): that one posts.
            self._states.pop(watch.job_id, None)
            log.info("job %s is watched by another process now", watch.job_id)
        except PostFenced:
            # The lease grew too old before the post went out: another process may take the
            # watch over (or has). Let it go here; the next tick polls it again from the
            # database if this process still holds it once its lease is renewed.
            self.fenced += 1
            self._states.pop(watch.job_id, None)
            log.warning("job %s: lease too old to post; post dropped", watch.job_id)
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
        # The job's card is the first message of its thread.
        thread = card = MessageRef(watch.channel, watch.thread_ts)
        if not state.reconciled:
            watch = await self._resolve_outbox(watch)
            state.last_event_id = watch.last_event_id
            state.reconciled = True
            if watch.done:  # its summary had reached the thread before the restart
                self._states.pop(watch.job_id, None)
                return
        # What this poll reads is shown only while the lease it was read under holds: a card
        # sent late, after another process took the watch, would put an older state back.
        epoch = self.store.lease_epoch
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
            await self._show_card(card, job_gone_message(watch.job_id), epoch)
            await self.store.update_watch(watch.job_id, status="gone", done=True)
            return
        # The channel's notify mode chooses which events are posted (bot.core.notify).
        mode = await channel_mode(self.store, watch.channel)
        posts = event_posts(mode, watch.job_id, new, user=watch.user_id, job=job)
        for reply in posts.replies:
            # In order, one at a time: the next waits until the store has this one as posted.
            meta = reply.metadata or {}
            entry = await self.store.outbox_intent(
                watch.job_id,
                "events",
                watch.channel,
                thread.ts,
                first_event_id=meta.get("first_event_id"),
                last_event_id=meta.get("last_event_id"),
            )
            await self._post(entry, reply, state, epoch)
            state.last_event_id = entry.last_event_id
        if posts.skip_to is not None:  # events the mode leaves out: never posted later either
            await self.store.update_watch(watch.job_id, last_event_id=posts.skip_to)
            state.last_event_id = posts.skip_to
        now = self.clock.monotonic()
        shown = (job.status, job.trained_steps, job.total_steps, job.estimated_finish)
        # A new status shows at once; progress alone at most every CARD_EVERY_S.
        if (
            not job.is_terminal
            and shown != state.shown
            and (job.status != state.status or now - state.card_shown_at >= CARD_EVERY_S)
        ):
            cost = await self.costs.card_text(job)
            links = await job_links(self.store, job.id)
            await self._show_card(card, job_card_message(job, cost=cost, links=links), epoch)
            state.card_shown_at = now
            state.shown = shown
        if job.status != state.status:
            state.status = job.status
            await self.store.update_watch(watch.job_id, status=job.status)
            if self.on_status_change is not None:
                self.on_status_change(watch)
        if job.is_terminal:
            await self._finish(watch, job, thread, epoch)
            return
        state.due = now + self.poll_s.get(job.status, DEFAULT_POLL_S)

    async def _finish(self, watch: Watch, job: Job, thread: MessageRef, epoch: int) -> None:
        checkpoints = []
        if job.status == "succeeded":
            checkpoints = await self.nebius.list_checkpoints(job.id)
        costs = await self.costs.for_job(job)
        final_card = job_card_message(
            job,
            cost=costs.card_text() if costs else None,
            links=await job_links(self.store, job.id),
        )
        await self._show_card(MessageRef(watch.channel, watch.thread_ts), final_card, epoch)
        # The loss chart, once, before the summary (bot.core.charts).
        fence = functools.partial(self._fence, epoch)
        await chart_at_end(self.store, self.chat, self.nebius, watch, job, checkpoints, fence=fence)
        mention = summary_mention(await channel_mode(self.store, watch.channel), job, watch.user_id)
        entry = await self.store.outbox_intent(job.id, "summary", watch.channel, thread.ts)
        state = self._states.setdefault(job.id, _State())
        summary = job_summary_message(
            job, checkpoints, mention, cost=costs.summary_text() if costs else None
        )
        await self._post(entry, summary, state, epoch)
        await self.store.update_watch(job.id, status=job.status, done=True)
        self._states.pop(job.id, None)

    def _fence(self, epoch: int) -> bool:
        """Whether a post recorded in lease epoch `epoch` may go out now: the lease is fresh,
        and has not lapsed since (a lapse may have let another process take the watch)."""
        return self.store.lease_epoch == epoch and self.store.lease_fresh()

    async def _show_card(self, card: MessageRef, message: Message, epoch: int) -> None:
        """Updates the job's card with what was read in lease epoch `epoch`; PostFenced, with
        nothing sent, when that lease grew too old meanwhile (the holder shows its own)."""
        fence = post_fence.set(lambda: self._fence(epoch))
        try:
            check_post_fence()  # and again in a chat that waits before sending (Slack's)
            await self.chat.update(card, message)
        finally:
            post_fence.reset(fence)

    async def _post(self, entry: OutboxEntry, message: Message, state: _State, epoch: int) -> None:
        """Posts one outbox entry and records the outcome; PostFenced, with the entry
        discarded (nothing was sent), when the lease grew too old before it went out."""
        fence = post_fence.set(lambda: self._fence(epoch))
        try:
            # Here for every chat, and again in a chat that waits before sending (Slack's).
            check_post_fence()
            ref = await self.chat.post(entry.channel, message, thread_ts=entry.thread_ts)
        except PostFenced:
            # Not sent. Discarded, so that whoever holds the watch next (this process after
            # a renewal, or the one taking over) posts it from the watch's last event.
            await self.store.outbox_discard(entry)
            raise
        except ChatError:
            # Slack answered with a refusal: nothing was posted; the next poll tries again.
            await self.store.outbox_discard(entry)
            raise
        except Exception:
            # No answer (a dropped connection, a timeout): it may have been posted, so the
            # next poll reads the thread back before posting anything more.
            state.reconciled = False
            raise
        finally:
            post_fence.reset(fence)
        await self.store.outbox_done(entry, ref.ts)

    async def _resolve_outbox(self, watch: Watch) -> Watch:
        """Settles this job's posts that may have been in flight at a crash, and returns the
        watch as the store has it afterwards.

        With none pending (every watch but those few), nothing is read from Slack. Otherwise
        the thread is read back once: a pending post found there (by its metadata: job id,
        kind, last event id) is marked done and moves the watch on; the first one not found,
        and any after it, are dropped, so the poll posts them again from the watch's last
        recorded event.
        """
        pending = await self.store.pending_outbox(watch.job_id)
        if not pending:
            return watch
        # A ChatError here leaves the entries pending: the poll backs off and tries again. A
        # chat that cannot read threads back (the console) finds nothing: all is posted again.
        posted = await self.chat.thread_metadata(watch.channel, watch.thread_ts)
        found = True
        for entry in pending:
            found = found and any(_carries(m, entry) for m in posted)
            if found:
                await self.store.outbox_done(entry, None)
            else:
                await self.store.outbox_discard(entry)
        log.info(
            "job %s: %d post(s) in flight at the restart, %s",
            watch.job_id,
            len(pending),
            "all found in the thread" if found else "posting again what the thread lacks",
        )
        return await self.store.watch(watch.job_id) or watch


def _carries(metadata: dict, entry: OutboxEntry) -> bool:
    """Whether a message's metadata is that of this outbox entry's post."""
    if metadata.get("job_id") != entry.job_id or metadata.get("kind") != entry.kind:
        return False
    return entry.kind != "events" or metadata.get("last_event_id") == entry.last_event_id
