"""Several processes on one database: watches and starts are leased, and what must happen
once happens once. Each store is one process; the clock is shared and moved by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.store import LeaseLost, SQLiteStore, Store
from tests.bot.fake_clock import FakeClock
from tests.bot.store.conftest import LEASE_S, OpenStore, claimed, lapse

PLAN = {"model": "m", "training": "F1", "training_name": "train.jsonl", "wandb": None}


@pytest.fixture
def shared(open_shared_store: OpenStore) -> OpenStore:
    return open_shared_store


async def add_watches(store: Store, n: int) -> None:
    for i in range(n):
        await store.add_watch(f"job-{i}", "C1", f"{i}.1", "U1")


async def test_a_watch_is_held_by_the_process_that_added_it(store: Store) -> None:
    await add_watches(store, 2)
    assert [w.job_id for w in await store.held_watches()] == ["job-0", "job-1"]
    assert await claimed(store) == []  # nothing free: it holds them already


async def test_a_restart_on_sqlite_resumes_its_watches_at_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    # One process per file: the new one need not wait for the killed one's lease.
    earlier = SQLiteStore(tmp_path / "bot.sqlite3", clock=clock, lease_s=LEASE_S)
    await add_watches(earlier, 2)
    await earlier.disconnect()  # killed
    later = SQLiteStore(tmp_path / "bot.sqlite3", clock=clock, lease_s=LEASE_S)
    assert [w.job_id for w in await claimed(later)] == ["job-0", "job-1"]


async def test_a_killed_process_loses_its_watches_a_grace_after_its_lease_lapses(
    shared: OpenStore, clock: FakeClock
) -> None:
    killed = await shared()
    await add_watches(killed, 4)
    b = await shared()
    c = await shared()
    await killed.disconnect()
    assert await claimed(b) == []  # its lease still runs
    clock.advance(LEASE_S / 2)
    assert await b.renew_session() and await c.renew_session()
    clock.advance(LEASE_S / 2 + 1)  # past the killed one's lease, within the grace after it
    # A post it sent just before it died may still be on its way to Slack: nobody takes its
    # watches (and reads their threads back) yet.
    assert await claimed(b) == [] and await claimed(c) == []
    clock.advance(b.takeover_grace_s)  # past the grace, within the others' leases

    taken_b, taken_c = await asyncio.gather(claimed(b), claimed(c))
    # Each takes its fair share (4 watches, 2 live processes), none taken twice.
    ids_b, ids_c = {w.job_id for w in taken_b}, {w.job_id for w in taken_c}
    assert ids_b | ids_c == {f"job-{i}" for i in range(4)}
    assert not ids_b & ids_c
    assert len(ids_b) == len(ids_c) == 2
    assert {w.owner for w in taken_b} == {b.session}


async def test_a_process_past_its_lease_cannot_post_for_a_watch_taken_over(
    shared: OpenStore, clock: FakeClock
) -> None:
    stalled = await shared()
    await add_watches(stalled, 1)
    other = await shared()
    lapse(clock, other)
    await other.renew_session()
    (taken,) = await claimed(other)

    with pytest.raises(LeaseLost):
        await stalled.outbox_intent("job-0", "events", "C1", "0.1", last_event_id="e1")
    # It learns its lease had lapsed, and holds nothing any more.
    assert await stalled.renew_session() is False
    assert await stalled.held_watches() == []
    entry = await other.outbox_intent("job-0", "events", "C1", "0.1", last_event_id="e1")
    assert entry.job_id == taken.job_id


async def test_a_process_may_post_only_while_its_last_renewal_is_fresh(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await open_store()
    assert store.renew_every_s == LEASE_S / 3
    assert store.lease_fresh()  # begun just now
    clock.advance(LEASE_S - store.renew_every_s - 1)
    assert store.lease_fresh()
    clock.advance(1)  # renewals stalled: a renewal interval before the lease ends, it may not
    assert not store.lease_fresh()
    assert await store.renew_session() is True
    assert store.lease_fresh() and store.lease_epoch == 0
    clock.advance(LEASE_S + 1)  # lapsed: posts recorded before the lapse are from an old epoch
    assert await store.renew_session() is False
    assert store.lease_fresh() and store.lease_epoch == 1


async def test_a_renewal_needs_no_connection_from_the_pool(
    shared: OpenStore, clock: FakeClock
) -> None:
    # Polls may hold every pooled connection for a while (a busy process): the renewal has a
    # connection of its own, so it neither waits for them nor times out.
    store = await shared(pool_max=1)
    clock.advance(store.renew_every_s)
    async with store._conn():  # the pool's only connection, busy
        assert await store.renew_session() is True
    assert await store.live_sessions() == 1


async def test_the_answer_to_a_post_sent_before_a_takeover_does_not_set_the_watch_back(
    shared: OpenStore, clock: FakeClock
) -> None:
    old = await shared()
    await add_watches(old, 1)
    late = await old.outbox_intent("job-0", "events", "C1", "0.1", last_event_id="e2")
    new = await shared()
    lapse(clock, new)
    await new.renew_session()
    assert len(await claimed(new)) == 1
    # The new holder found the post in the thread, and posted more after it.
    await new.outbox_done(late, None)
    more = await new.outbox_intent("job-0", "events", "C1", "0.1", last_event_id="e5")
    await new.outbox_done(more, "0.9")
    await old.outbox_done(late, "0.5")  # the old holder learns of its post only now
    assert (await new.watch("job-0")).last_event_id == "e5"


async def test_a_closed_process_hands_its_watches_back_at_once(shared: OpenStore) -> None:
    leaving = await shared()
    await add_watches(leaving, 2)
    staying = await shared()
    await leaving.close()  # a rolling restart: no waiting for the lease
    assert len(await claimed(staying)) == 2


async def test_starts_of_a_live_process_are_its_own_and_of_a_dead_one_taken_once(
    shared: OpenStore, clock: FakeClock
) -> None:
    first = await shared()
    await first.begin_start("command:t1", "fp-1", channel="C1", user_id="U1", plan=PLAN)
    b = await shared()
    c = await shared()
    assert await b.unfinished_starts() == []  # first is alive and still starting it
    await first.disconnect()
    lapse(clock, b)
    await b.renew_session()
    await c.renew_session()

    found = await asyncio.gather(b.unfinished_starts(), c.unfinished_starts())
    assert sorted(len(starts) for starts in found) == [0, 1]


async def test_each_event_id_and_request_key_is_claimed_by_one_process(
    shared: OpenStore,
) -> None:
    stores = [await shared() for _ in range(3)]
    ids = [f"Ev{i}" for i in range(20)]
    claims = await asyncio.gather(*(s.claim_event(e) for e in ids for s in stores))
    assert sum(claims) == len(ids)
    keys = await asyncio.gather(*(s.claim_request("req-1") for s in stores))
    assert sorted(keys) == [False, False, True]


async def test_identical_content_goes_ahead_in_one_process_only(shared: OpenStore) -> None:
    stores = [await shared() for _ in range(3)]
    answers = await asyncio.gather(
        *(
            s.claim_content("fp", f"req-{i}", user_id="U1", channel="C1", window_s=600)
            for i, s in enumerate(stores)
        )
    )
    assert sum(answer is None for answer in answers) == 1
    (winner,) = {a.request_key for a in answers if a is not None}
    assert all(a is None or a.request_key == winner for a in answers)


async def test_a_content_uploaded_twice_keeps_the_first_file_id(open_store: OpenStore) -> None:
    store = await open_store()
    assert await store.remember_nebius_file("sha", "file-1", "a.jsonl", 10) == "file-1"
    assert await store.remember_nebius_file("sha", "file-2", "a.jsonl", 10) == "file-1"
    assert await store.nebius_file("sha") == "file-1"
