"""The store's record of job starts in flight: what a restart needs, and nothing secret."""

from __future__ import annotations

from bot.store import RETENTION_S, Store
from tests.bot.fake_clock import FakeClock
from tests.bot.store.conftest import OpenStore

PLAN = {"model": "m", "training": "F1", "training_name": "train.jsonl", "wandb": None}


async def begin(store: Store, key: str = "command:t1") -> None:
    await store.begin_start(key, "fp-1", channel="C1", user_id="U1", plan=PLAN)


async def test_a_start_of_an_earlier_process_is_unfinished_one_of_this_process_is_not(
    open_store: OpenStore,
) -> None:
    earlier = await open_store()
    await begin(earlier)
    await earlier.start_messages("command:t1", "111.1", "111.2")
    await earlier.start_creating("command:t1", {"model": "m", "training_file": "file-1"})
    assert await earlier.unfinished_starts() == []  # its own starts are still running
    await earlier.close()

    later = await open_store()
    await begin(later, "command:t2")  # a start of the new process, under way
    (start,) = await later.unfinished_starts()
    assert start.request_key == "command:t1" and start.phase == "creating"
    assert (start.message_ts, start.step_ts, start.user_id) == ("111.1", "111.2", "U1")
    assert start.plan == PLAN and start.request == {"model": "m", "training_file": "file-1"}
    assert start.create_sent_at is not None


async def test_an_interrupted_start_is_taken_once(store: Store) -> None:
    await begin(store)
    assert await store.take_interrupted_start("command:t1") is None  # not interrupted: running
    await store.start_interrupted("command:t1")

    taken = await store.take_interrupted_start("command:t1")
    assert taken is not None and taken.plan == PLAN
    assert await store.take_interrupted_start("command:t1") is None
    assert await store.pending_start("command:t1") is None


async def test_interrupted_starts_are_forgotten_after_the_retention_running_ones_are_not(
    store: Store, clock: FakeClock
) -> None:
    await begin(store, "old-interrupted")
    await store.start_interrupted("old-interrupted")
    await begin(store, "old-running")
    clock.advance(RETENTION_S + 1)

    await store.prune()

    assert await store.pending_start("old-interrupted") is None
    assert await store.pending_start("old-running") is not None


async def test_jobs_of_other_threads_are_known(store: Store) -> None:
    await store.add_watch("job-a", "C1", "111.1", "U1")
    await store.add_watch("job-b", "C1", "222.2", "U2")
    await store.add_watch("job-c", "C2", "111.1", "U2")

    assert await store.jobs_watched_elsewhere("C1", "111.1") == {"job-b", "job-c"}
    assert await store.jobs_watched_elsewhere("C1", None) == {"job-a", "job-b", "job-c"}
