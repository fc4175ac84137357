"""What a job was started from (for Retry), which job retries which, per-channel notify
settings, and whether a kind of post reached a thread: in SQLite and PostgreSQL alike, and
across a restart."""

from __future__ import annotations

from bot.store import Store
from tests.bot.fake_clock import FakeClock
from tests.bot.store.conftest import OpenStore

PLAN = {"model": "m", "training": "F1", "hyperparameters": {"n_epochs": 2}, "wandb": None}


async def test_a_jobs_plan_is_kept_across_a_restart(open_store: OpenStore) -> None:
    store = await open_store()
    await store.remember_job("ftjob-1", channel="C1", user_id="U1", plan=PLAN)
    await store.close()

    plan = await (await open_store()).job_plan("ftjob-1")
    assert plan is not None
    assert (plan.job_id, plan.channel, plan.user_id, plan.retry_of) == ("ftjob-1", "C1", "U1", None)
    assert plan.plan == PLAN


async def test_the_first_record_of_a_job_stands(store: Store) -> None:
    await store.remember_job("ftjob-1", channel="C1", user_id="U1", plan=PLAN)
    await store.remember_job("ftjob-1", channel="C2", user_id="U2", plan={"model": "other"})
    plan = await store.job_plan("ftjob-1")
    assert plan is not None and plan.channel == "C1" and plan.plan == PLAN
    assert await store.job_plan("ftjob-unknown") is None


async def test_retries_are_linked_both_ways(store: Store, clock: FakeClock) -> None:
    await store.remember_job("ftjob-1", channel="C1", user_id="U1", plan=PLAN)
    await store.remember_job("ftjob-2", channel="C1", user_id="U1", plan=PLAN, retry_of="ftjob-1")
    clock.advance(5)
    await store.remember_job("ftjob-3", channel="C1", user_id="U2", plan=PLAN, retry_of="ftjob-1")

    assert await store.retries_of("ftjob-1") == ["ftjob-2", "ftjob-3"]
    assert await store.retries_of("ftjob-2") == []
    second = await store.job_plan("ftjob-2")
    assert second is not None and second.retry_of == "ftjob-1"


async def test_a_channels_notify_mode_is_set_changed_and_kept(open_store: OpenStore) -> None:
    store = await open_store()
    assert await store.notify_mode("C1") is None
    await store.set_notify_mode("C1", "summary", "U1")
    await store.set_notify_mode("C1", "failures", "U2")
    await store.set_notify_mode("C2", "all", "U1")
    await store.close()

    store = await open_store()
    assert await store.notify_mode("C1") == "failures"
    assert await store.notify_mode("C2") == "all"
    assert await store.notify_mode("C3") is None


async def test_a_post_of_a_kind_counts_only_once_it_reached_the_thread(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    await store.add_watch("ftjob-1", "C1", "1.1", "U1")
    entry = await store.outbox_intent("ftjob-1", "chart", "C1", "1.1")
    assert await store.outbox_posted("ftjob-1", "chart") is False  # pending only
    await store.outbox_done(entry, None)
    await store.close()

    store = await open_store()
    assert await store.outbox_posted("ftjob-1", "chart") is True
    assert await store.outbox_posted("ftjob-1", "summary") is False
    assert await store.outbox_posted("ftjob-2", "chart") is False
    # A chart is not a summary: the watch goes on.
    watch = await store.watch("ftjob-1")
    assert watch is not None and not watch.done
