"""Two bot processes on one PostgreSQL database, one of them stalled (its renewals starved, as
on an overloaded host): it posts nothing once its lease is too old, the other takes its watch
over a grace after the lease, and every event reaches the thread once."""

from __future__ import annotations

import asyncio

from bot.chat_interface import Message, MessageRef
from bot.core.watcher import Watcher
from bot.slack.web_chat import SlackChat
from bot.store import Store
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import BOT_TOKEN, FakeSlack
from tests.bot.store.conftest import LEASE_S, OpenStore, TwoProcesses, WatchJob, lapse
from tests.bot.watching import FakeJobs, event_replies


class HeldClock:
    """The shared fake clock, but its sleeps wait until the test lets them go: the stalled
    process's Slack pacing (a 429's Retry-After) lasts as long as the test wants."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sleeping = asyncio.Event()
        self.go = asyncio.Event()

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def time(self) -> float:
        return self.clock.time()

    async def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        await self.go.wait()
        self.clock.advance(seconds)  # and then the wait itself, as a real one would last


class SlowAnswer:
    """The Slack chat, whose answer to one events reply comes only when the test lets it:
    the post is in the thread, but its process does not know so yet."""

    def __init__(self, chat: SlackChat) -> None:
        self.chat = chat
        self.sent = asyncio.Event()
        self.answer = asyncio.Event()

    def __getattr__(self, name: str):
        return getattr(self.chat, name)

    async def post(
        self, channel: str, message: Message, *, thread_ts: str | None = None
    ) -> MessageRef:
        ref = await self.chat.post(channel, message, thread_ts=thread_ts)
        if (message.metadata or {}).get("kind") == "events":
            self.sent.set()
            await self.answer.wait()
        return ref


async def test_a_stalled_process_drops_a_post_that_waited_past_its_lease(
    two_processes: TwoProcesses,
    world: dict,
    fake_slack: FakeSlack,
    clock: FakeClock,
    nebius_jobs: FakeJobs,
) -> None:
    stalled, other, ts = two_processes
    # Its events reply comes right after the card in that channel: Slack answers 429, and
    # the chat waits the Retry-After out, for as long as the test holds its clock.
    held = HeldClock(clock)
    chat = SlackChat(world["chat"].client, bot_token=BOT_TOKEN, clock=held)
    first = Watcher(stalled, chat, world["nebius"], clock=clock)
    second = Watcher(other, world["chat"], world["nebius"], clock=clock)

    polling = asyncio.create_task(first.poll_due())
    await asyncio.wait_for(held.sleeping.wait(), 10)
    assert event_replies(fake_slack, ts) == []
    # Nothing renews the stalled process's lease meanwhile; the other takes the watch over
    # once the lease and the grace after it have passed, and posts the events.
    lapse(clock, other)
    await second.poll_due()
    assert second.polls == 1
    assert (await other.watch("job-1")).owner == other.session
    held.go.set()  # the stalled process's post, past its Retry-After
    await asyncio.wait_for(polling, 10)

    replies = event_replies(fake_slack, ts)
    assert len(replies) == 1  # the other's: the stalled one's was dropped, not sent late
    assert "started" in replies[0] and "step 1" in replies[0]
    assert first.fenced == 1
    # It let the watch go, and posts nothing more for it once it renews.
    nebius_jobs.emit("job-1", "step 2")
    clock.advance(other.renew_every_s)  # the other's lease runs on
    await first.poll_due()
    assert first.polls == 1 and first.lapses == 1
    await second.poll_due()
    replies = event_replies(fake_slack, ts)
    assert len(replies) == 2 and "step 2" in replies[1] and "step 1" not in replies[1]


class HeldUpdate:
    """The Slack chat, whose card updates wait until the test lets them go (as on a host that
    stalls between reading a job and showing it)."""

    def __init__(self, chat: SlackChat) -> None:
        self.chat = chat
        self.updating = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str):
        return getattr(self.chat, name)

    async def update(self, ref: MessageRef, message: Message) -> None:
        self.updating.set()
        await self.go.wait()
        await self.chat.update(ref, message)


async def test_a_stalled_process_does_not_put_an_older_card_back_after_a_takeover(
    two_processes: TwoProcesses,
    world: dict,
    fake_slack: FakeSlack,
    clock: FakeClock,
    nebius_jobs: FakeJobs,
) -> None:
    stalled, other, ts = two_processes
    held = HeldUpdate(world["chat"])
    first = Watcher(stalled, held, world["nebius"], clock=clock)
    second = Watcher(other, world["chat"], world["nebius"], clock=clock)

    # The stalled process read the job running, and stalls before showing it on the card.
    polling = asyncio.create_task(first.poll_due())
    await asyncio.wait_for(held.updating.wait(), 10)
    # Meanwhile the job ends; the other process takes the watch over and shows the end.
    nebius_jobs.jobs["job-1"]["status"] = "succeeded"
    lapse(clock, other)
    await second.poll_due()
    card = fake_slack.messages[("C1", ts)]
    assert "succeeded" in card.text
    shown = card.updates
    held.go.set()
    await asyncio.wait_for(polling, 10)

    assert card.updates == shown and "succeeded" in card.text  # not "running" again
    assert first.fenced == 1


async def test_a_stalled_process_on_its_own_posts_the_dropped_events_once_renewed(
    store: Store, watch_job: WatchJob, world: dict, fake_slack: FakeSlack, clock: FakeClock
) -> None:
    ts = await watch_job(store, "started")
    held = HeldClock(clock)
    chat = SlackChat(world["chat"].client, bot_token=BOT_TOKEN, clock=held)
    w = Watcher(store, chat, world["nebius"], clock=clock)

    polling = asyncio.create_task(w.poll_due())
    await asyncio.wait_for(held.sleeping.wait(), 10)
    clock.advance(LEASE_S - store.renew_every_s)  # too old to post, not lapsed
    held.go.set()
    await asyncio.wait_for(polling, 10)
    assert event_replies(fake_slack, ts) == [] and w.fenced == 1
    assert await store.pending_outbox() == []  # known not sent: nothing to read back

    clock.advance(1)
    await w.poll_due()  # renewed (in time: it had not lapsed), so the watch is still its own
    (reply,) = event_replies(fake_slack, ts)
    assert "started" in reply and w.lapses == 0
    assert fake_slack.calls_to("conversations.replies") == []


async def test_a_takeover_with_a_post_of_the_old_holder_pending_posts_nothing_twice(
    two_processes: TwoProcesses,
    open_shared_store: OpenStore,
    world: dict,
    fake_slack: FakeSlack,
    clock: FakeClock,
    nebius_jobs: FakeJobs,
) -> None:
    old, new, ts = two_processes
    slow = SlowAnswer(world["chat"])
    first = Watcher(old, slow, world["nebius"], clock=clock)
    second = Watcher(new, world["chat"], world["nebius"], clock=clock)

    # The old holder's reply reaches the thread, but its answer is slow to come back.
    clock.advance(1)  # Slack's pacing after the card
    polling = asyncio.create_task(first.poll_due())
    await asyncio.wait_for(slow.sent.wait(), 10)
    lapse(clock, new)
    nebius_jobs.emit("job-1", "step 2")
    await second.poll_due()
    # The new holder read the thread back for the pending post, found it, and went on.
    assert len(fake_slack.calls_to("conversations.replies")) == 1
    slow.answer.set()
    await asyncio.wait_for(polling, 10)

    replies = event_replies(fake_slack, ts)
    assert len(replies) == 2
    assert "step 1" in replies[0] and "step 2" in replies[1] and "step 1" not in replies[1]
    # The old holder's late answer did not set the watch back: whoever holds it next (here
    # a third process, after the new holder dies) resumes after step 2, not before.
    assert (await new.watch("job-1")).last_event_id == "job-1-ev3"
    await new.disconnect()
    third = await open_shared_store()
    lapse(clock, third)
    last = Watcher(third, world["chat"], world["nebius"], clock=clock)
    await last.poll_due()
    assert last.polls == 1
    assert len(event_replies(fake_slack, ts)) == 2
