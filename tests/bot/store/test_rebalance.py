"""A process that starts later gets its share: the ones already running hand back the watches
they hold beyond their share (never one they are polling, nor one with a post pending), the
new one takes them at its next tick, and every event still reaches each thread once."""

from __future__ import annotations

from bot.core.watcher import Watcher
from bot.store import Store
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import FakeSlack
from tests.bot.store.conftest import OpenStore
from tests.bot.watching import FakeJobs, event_replies, followed

JOBS = [f"job-{n}" for n in range(1, 7)]


async def _held(store: Store) -> list[str]:
    return sorted(w.job_id for w in await store.held_watches())


async def _watch_six(store: Store) -> None:
    for n, job_id in enumerate(JOBS):
        await store.add_watch(job_id, "C1", f"{n + 1}.0", "U1")


async def test_a_process_started_later_is_handed_its_share(open_shared_store: OpenStore) -> None:
    first = await open_shared_store()
    await _watch_six(first)
    assert await first.rebalance_watches() == ([], [])  # alone: all six are its share
    second = await open_shared_store()

    taken, handed_back = await first.rebalance_watches()
    assert taken == [] and handed_back == ["job-4", "job-5", "job-6"]  # the newest
    taken, handed_back = await second.rebalance_watches()
    assert [w.job_id for w in taken] == ["job-4", "job-5", "job-6"] and handed_back == []
    # Balanced: nobody takes or hands back more.
    assert await first.rebalance_watches() == ([], [])
    assert await second.rebalance_watches() == ([], [])
    assert await _held(first) == JOBS[:3] and await _held(second) == JOBS[3:]


async def test_three_processes_settle_without_passing_watches_around(
    open_shared_store: OpenStore,
) -> None:
    stores = [await open_shared_store()]
    await _watch_six(stores[0])
    stores += [await open_shared_store(), await open_shared_store()]
    for _ in range(3):
        for store in stores:
            await store.rebalance_watches()
    held = [await _held(store) for store in stores]
    assert sorted(job for jobs in held for job in jobs) == JOBS  # each held once
    assert [len(jobs) for jobs in held] == [2, 2, 2]
    for store in stores:
        assert await store.rebalance_watches() == ([], [])


async def test_a_watch_being_polled_or_with_a_post_pending_is_not_handed_back(
    open_shared_store: OpenStore,
) -> None:
    first = await open_shared_store()
    await _watch_six(first)
    await first.outbox_intent("job-6", "events", "C1", "6.0", first_event_id="e1")
    await open_shared_store()

    _, handed_back = await first.rebalance_watches(busy={"job-5"})
    assert handed_back == ["job-2", "job-3", "job-4"]
    assert await _held(first) == ["job-1", "job-5", "job-6"]


async def test_watchers_share_the_jobs_after_a_second_starts_and_post_each_event_once(
    open_shared_store: OpenStore,
    world: dict,
    fake_slack: FakeSlack,
    nebius_jobs: FakeJobs,
    clock: FakeClock,
) -> None:
    first_store = await open_shared_store()
    threads = {
        job_id: await followed(world, first_store, nebius_jobs, "started", job_id=job_id)
        for job_id in JOBS[:4]
    }
    first = Watcher(first_store, world["chat"], world["nebius"], clock=clock)
    await first.poll_due()
    assert first.polls == 4

    second_store = await open_shared_store()
    second = Watcher(second_store, world["chat"], world["nebius"], clock=clock)
    for job_id in JOBS[:4]:
        nebius_jobs.emit(job_id, "step 1")
    clock.advance(10)  # the jobs' next poll; well within the first's lease
    await second.poll_due()  # its lease renewed: two processes live, nothing free yet
    assert second.polls == 0
    await first.poll_due()  # hands two back, polls its two
    await second.poll_due()  # takes them and polls them
    assert (first.polls, second.polls) == (6, 2)
    assert len(await second_store.held_watches()) == 2

    for job_id, ts in threads.items():
        first_reply, second_reply = event_replies(fake_slack, ts)  # one a poll, none twice
        assert "started" in first_reply and "step 1" not in first_reply, job_id
        assert "step 1" in second_reply and "started" not in second_reply, job_id
