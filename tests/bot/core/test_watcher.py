"""The watcher: every event reaches the thread once, in order, across a crash and restart."""

from __future__ import annotations

import json
import re

import pytest

from bot.chat_interface import ChatError
from bot.core.watcher import Watcher
from bot.slack.web_chat import SlackChat
from bot.store import Store
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import FakeSlack
from tests.bot.watching import (
    FakeJobs,
    event_replies,
    followed,
    open_store,
    restart,
    start_watch,
    watcher,
)


async def test_a_burst_of_events_is_one_reply_in_order_and_nothing_twice(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await followed(world, store, nebius_jobs, "started", "step 1", "step 2")
    w = watcher(world, store, clock)

    await w.poll_due()
    clock.advance(60)
    await w.poll_due()  # nothing new
    nebius_jobs.emit("job-1", "step 3")
    clock.advance(60)
    await w.poll_due()

    replies = event_replies(fake_slack, ts)
    assert len(replies) == 2
    first = replies[0]
    assert first.index("started") < first.index("step 1") < first.index("step 2")
    assert "step 3" in replies[1] and "step 2" not in replies[1]
    assert (await store.watch("job-1")).last_event_id == "job-1-ev4"


async def test_a_restart_resumes_from_the_database(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await followed(world, store, nebius_jobs, "started")
    await watcher(world, store, clock).poll_due()

    store = await restart(world, store)
    nebius_jobs.emit("job-1", "after the restart")
    clock.advance(60)
    await watcher(world, store, clock).poll_due()

    replies = event_replies(fake_slack, ts)
    assert len(replies) == 2
    assert "after the restart" in replies[1] and "started" not in replies[1]


class Crash(BaseException):
    """The process dies here (nothing after it runs, no handler sees it)."""


class CrashingChat:
    """The Slack chat, dying around the `nth` post: "before" Slack gets it, or "after"
    Slack took it but before anyone learnt so."""

    def __init__(self, chat: SlackChat, when: str, nth: int = 1) -> None:
        self.chat, self.when, self.left = chat, when, nth

    def __getattr__(self, name: str):
        return getattr(self.chat, name)

    async def post(self, channel, message, *, thread_ts=None):
        self.left -= 1
        if self.left == 0 and self.when == "before":
            raise Crash
        ref = await self.chat.post(channel, message, thread_ts=thread_ts)
        if self.left == 0 and self.when == "after":
            raise Crash
        return ref


async def crash_while_polling(
    world: dict, store: Store, clock: FakeClock, when: str, job_id: str = "job-1"
) -> None:
    """One poll of `job_id` during which the process dies at its first post, `when` "before"
    Slack gets it or "after"."""
    chat = CrashingChat(world["chat"], when)
    with pytest.raises(Crash):
        await Watcher(store, chat, world["nebius"], clock=clock).poll(await store.watch(job_id))


# 150 events of about 100 characters: some 15,000 characters, five blocks' worth.
LONG_RUN = [f"event-{n:03d} " + "x" * 80 for n in range(1, 151)]


def event_ids_posted(fake: FakeSlack, thread_ts: str) -> list[str]:
    """Every event id the thread shows, in thread order (from the replies' text)."""
    blocks = [
        json.dumps(m.blocks)
        for m in fake.thread("C1", thread_ts)
        if (m.metadata or {}).get("event_payload", {}).get("kind") == "events"
    ]
    return re.findall(r"event-(\d+)", "".join(blocks))


async def test_a_crash_between_posting_and_recording_posts_nothing_twice(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await followed(world, store, nebius_jobs, "started", "step 1")

    # The process dies right after Slack accepted the reply, before the store recorded it.
    await crash_while_polling(world, store, clock, "after")
    assert len(event_replies(fake_slack, ts)) == 1

    store = await restart(world, store)
    assert (await store.watch("job-1")).last_event_id is None  # the record was lost
    assert len(await store.pending_outbox()) == 1  # but not the intent
    nebius_jobs.emit("job-1", "step 2")
    clock.advance(60)
    await watcher(world, store, clock).poll_due()

    replies = event_replies(fake_slack, ts)
    assert len(replies) == 2
    assert "step 2" in replies[1] and "step 1" not in replies[1]
    assert len(fake_slack.calls_to("conversations.replies")) == 1
    assert await store.pending_outbox() == []


async def test_a_crash_just_before_posting_loses_nothing(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await followed(world, store, nebius_jobs, "started", "step 1")
    await crash_while_polling(world, store, clock, "before")
    assert event_replies(fake_slack, ts) == []

    store = await restart(world, store)
    clock.advance(60)
    await watcher(world, store, clock).poll_due()

    (reply,) = event_replies(fake_slack, ts)
    assert reply.index("started") < reply.index("step 1")
    assert (await store.watch("job-1")).last_event_id == "job-1-ev2"
    assert len(fake_slack.calls_to("conversations.replies")) == 1


async def test_a_restart_reads_back_only_the_threads_with_a_post_in_flight(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    threads = {}
    for i in range(12):
        threads[f"job-{i}"] = await followed(
            world, store, nebius_jobs, "started", job_id=f"job-{i}", channel=f"C{i}"
        )
    await watcher(world, store, clock).poll_due()
    for i in range(12):
        nebius_jobs.emit(f"job-{i}", "step 1")
    # Two posts in flight at the crash: one reached Slack, one did not.
    for job_id, when in (("job-3", "after"), ("job-7", "before")):
        clock.advance(60)
        await crash_while_polling(world, store, clock, when, job_id)
    fake_slack.calls.clear()

    store = await restart(world, store)
    for i in range(12):
        nebius_jobs.emit(f"job-{i}", "step 2")
    clock.advance(60)
    await watcher(world, store, clock).poll_due()

    reads = fake_slack.calls_to("conversations.replies")
    assert sorted(c.args["ts"] for c in reads) == sorted([threads["job-3"], threads["job-7"]])
    for job_id, ts in threads.items():
        text = "".join(r for r in fake_slack_texts(fake_slack, ts, job_id))
        assert text.count("started") == 1 and text.count("step 1") == 1, job_id
        assert text.index("started") < text.index("step 1") < text.index("step 2"), job_id
        assert (await store.watch(job_id)).last_event_id == f"{job_id}-ev3"


def fake_slack_texts(fake: FakeSlack, thread_ts: str, job_id: str) -> list[str]:
    channel = next(m.channel for m in fake.messages.values() if m.ts == thread_ts)
    return [
        json.dumps(m.blocks)
        for m in fake.thread(channel, thread_ts)
        if (m.metadata or {}).get("event_payload", {}).get("job_id") == job_id
    ]


async def test_a_long_catch_up_reaches_the_thread_whole_in_order_over_several_replies(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await followed(world, store, nebius_jobs, *LONG_RUN)

    await watcher(world, store, clock).poll_due()

    assert event_ids_posted(fake_slack, ts) == [f"{n:03d}" for n in range(1, 151)]
    replies = [
        m for m in fake_slack.thread("C1", ts) if m.metadata["event_payload"]["kind"] == "events"
    ]
    assert len(replies) > 1
    for reply in replies:  # each records as posted the last event it shows, and no more
        shown = re.findall(r"event-(\d+)", json.dumps(reply.blocks))
        assert reply.metadata["event_payload"]["last_event_id"] == f"job-1-ev{int(shown[-1])}"
        assert reply.metadata["event_payload"]["first_event_id"] == f"job-1-ev{int(shown[0])}"
    assert (await store.watch("job-1")).last_event_id == "job-1-ev150"


async def test_a_reply_slack_refuses_mid_burst_leaves_the_watch_at_the_last_one_posted(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await followed(world, store, nebius_jobs, *LONG_RUN)

    class RefusingSecond(CrashingChat):
        async def post(self, channel, message, *, thread_ts=None):
            self.left -= 1
            if self.left == 0:
                raise ChatError("Slack refused chat.postMessage: internal_error")
            return await self.chat.post(channel, message, thread_ts=thread_ts)

    w = Watcher(store, RefusingSecond(world["chat"], "", nth=2), world["nebius"], clock=clock)
    await w.poll_due()
    first = event_ids_posted(fake_slack, ts)
    assert 0 < len(first) < 150
    assert (await store.watch("job-1")).last_event_id == f"job-1-ev{int(first[-1])}"
    assert await store.pending_outbox() == []  # a refusal is known not to have been posted

    clock.advance(600)
    await w.poll_due()
    assert event_ids_posted(fake_slack, ts) == [f"{n:03d}" for n in range(1, 151)]
    assert fake_slack.calls_to("conversations.replies") == []


async def test_a_post_with_no_answer_is_read_back_before_anything_more_is_posted(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await followed(world, store, nebius_jobs, "event-001", "event-002")

    class LostAnswer(CrashingChat):
        async def post(self, channel, message, *, thread_ts=None):
            self.left -= 1
            ref = await self.chat.post(channel, message, thread_ts=thread_ts)
            if self.left == 0:
                raise TimeoutError  # Slack posted it; the answer never came
            return ref

    w = Watcher(store, LostAnswer(world["chat"], ""), world["nebius"], clock=clock)
    await w.poll_due()
    nebius_jobs.emit("job-1", "event-003")
    clock.advance(600)
    await w.poll_due()

    assert event_ids_posted(fake_slack, ts) == ["001", "002", "003"]
    assert len(fake_slack.calls_to("conversations.replies")) == 1


async def test_an_event_longer_than_a_block_is_shown_shortened_with_a_note(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await followed(world, store, nebius_jobs, "event-001 traceback " + "y" * 7000 + " END")
    nebius_jobs.emit("job-1", "event-002 huge " + "z" * 30000 + " TAIL", "event-003 after")

    await watcher(world, store, clock).poll_due()

    # What the code blocks show, their pieces put back together.
    text = "".join(
        b["text"]["text"].strip("`")
        for m in fake_slack.thread("C1", ts)
        for b in m.blocks
        if b["type"] == "section"
    )
    assert event_ids_posted(fake_slack, ts) == ["001", "002", "003"]
    assert "traceback " + "y" * 7000 + " END" in text  # over several blocks, whole
    assert "TAIL" not in text and "event shortened: 30," in text
    assert (await store.watch("job-1")).last_event_id == "job-1-ev3"


async def test_a_summary_in_flight_at_a_crash_is_posted_exactly_once(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    for when, job_id in (("after", "job-a"), ("before", "job-b")):
        store = open_store(world)
        nebius_jobs.add(job_id, status="failed")
        nebius_jobs.jobs[job_id]["error"] = {"message": "out of memory"}
        ts = await start_watch(world, store, job_id)
        await crash_while_polling(world, store, clock, when, job_id)

        store = await restart(world, store)
        clock.advance(60)
        await watcher(world, store, clock).poll_due()
        clock.advance(60)
        await watcher(world, store, clock).poll_due()

        summaries = [m for m in fake_slack.thread("C1", ts) if "out of memory" in m.text]
        assert len(summaries) == 1, when
        assert await store.active_watches() == [], when
        await store.close()


async def test_the_end_posts_checkpoints_with_download_buttons_and_mentions_the_user(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    nebius_jobs.add("job-1", status="succeeded")
    nebius_jobs.jobs["job-1"]["fine_tuned_model"] = "m:ft-1"
    nebius_jobs.checkpoints["job-1"] = [
        {"id": "cp-2", "step_number": 20, "metrics": {"train_loss": 0.5}, "result_files": ["f2"]},
        {"id": "cp-1", "step_number": 10, "metrics": {"train_loss": 0.9}, "result_files": ["f1"]},
    ]
    ts = await start_watch(world, store, "job-1")
    await watcher(world, store, clock).poll_due()

    (summary,) = [m for m in fake_slack.thread("C1", ts) if "succeeded" in m.text]
    assert "<@U1>" in summary.text and "m:ft-1" in summary.text
    text = json.dumps(summary.blocks)
    assert text.index("Step 10") < text.index("Step 20")
    assert "train_loss=0.5" in text
    downloads = [b["accessory"]["value"] for b in summary.blocks if "accessory" in b]
    assert downloads == ["job-1:cp-1", "job-1:cp-2"]
    assert ":white_check_mark: succeeded" in json.dumps(fake_slack.messages[("C1", ts)].blocks)
    assert await store.active_watches() == []


async def test_a_job_that_disappears_says_so_on_its_card(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await start_watch(world, store, "job-gone")
    await watcher(world, store, clock).poll_due()
    assert "no longer exists" in fake_slack.messages[("C1", ts)].text
    assert await store.active_watches() == []


async def test_a_nebius_error_backs_off_that_job_and_the_others_carry_on(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    nebius_jobs.add("job-bad")
    nebius_jobs.add("job-ok")
    nebius_jobs.failing.add("job-bad")
    await start_watch(world, store, "job-bad")
    ok_ts = await start_watch(world, store, "job-ok")
    nebius_jobs.emit("job-ok", "fine")
    w = watcher(world, store, clock)
    before = clock.monotonic()

    await w.poll_due()

    assert len(event_replies(fake_slack, ok_ts)) == 1
    assert w._states["job-bad"].errors == 1
    assert w._states["job-bad"].due >= before + 15


async def test_many_jobs_in_one_channel_get_every_event_without_a_429(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    threads = {}
    for i in range(20):
        threads[f"job-{i}"] = await followed(
            world, store, nebius_jobs, "started", "step 1", job_id=f"job-{i}"
        )
    clock.advance(5)

    await watcher(world, store, clock).poll_due()

    assert fake_slack.rate_limited == 0
    for job_id, ts in threads.items():
        (reply,) = event_replies(fake_slack, ts)
        assert "started" in reply and "step 1" in reply, job_id


async def test_a_progress_change_updates_the_card_at_most_every_interval(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    store = open_store(world)
    ts = await followed(world, store, nebius_jobs)
    w = watcher(world, store, clock)
    card = fake_slack.messages[("C1", ts)]

    await w.poll_due()  # queued -> running: shown at once
    assert card.updates == 1
    nebius_jobs.jobs["job-1"].update(trained_steps=1, total_steps=10)
    clock.advance(10)
    await w.poll_due()  # progress only, 10 s later: held back
    assert card.updates == 1
    clock.advance(25)
    await w.poll_due()  # 35 s after the last update: shown
    assert card.updates == 2
    assert "step 1 of 10" in json.dumps(card.blocks)


async def test_the_running_watcher_picks_up_a_new_watch_and_follows_it_to_the_end(
    world: dict, fake_slack: FakeSlack, clock: FakeClock, nebius_jobs: FakeJobs
) -> None:
    import asyncio

    store = open_store(world)
    w = watcher(world, store, clock)
    task = asyncio.create_task(w.run())
    try:
        nebius_jobs.add("job-1")
        ts = await start_watch(world, store, "job-1")
        nebius_jobs.emit("job-1", "started")
        w.wake()
        for _ in range(1000):
            if event_replies(fake_slack, ts):
                break
            await asyncio.sleep(0)
        nebius_jobs.jobs["job-1"]["status"] = "failed"
        nebius_jobs.jobs["job-1"]["error"] = {"message": "out of memory"}
        for _ in range(1000):
            if await store.active_watches() == []:
                break
            await asyncio.sleep(0)
    finally:
        task.cancel()
    assert len(event_replies(fake_slack, ts)) == 1
    (summary,) = [m for m in fake_slack.thread("C1", ts) if "failed" in m.text]
    assert "out of memory" in summary.text and "<@U1>" in summary.text
