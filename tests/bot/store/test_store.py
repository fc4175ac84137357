"""The bot's state survives a restart and answers "seen before?" exactly once, in SQLite and
in PostgreSQL alike."""

from pathlib import Path

from bot.store import PRUNE_EVERY, RETENTION_S, SQLiteStore, Store
from tests.bot.fake_clock import FakeClock
from tests.bot.store.conftest import OpenStore, claimed

# A job request by content, remembered for ten minutes.
CLAIM = {"user_id": "U1", "channel": "C1", "window_s": 600}


async def test_a_sqlite_database_uses_wal(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "bot.sqlite3")
    assert store.journal_mode == "wal"
    await store.close()


async def test_an_event_id_is_claimed_once_even_across_a_restart(open_store: OpenStore) -> None:
    store = await open_store()
    assert await store.claim_event("Ev1") is True
    assert await store.claim_event("Ev1") is False
    await store.close()
    assert await (await open_store()).claim_event("Ev1") is False


async def test_nebius_file_ids_are_remembered_by_content_hash(open_store: OpenStore) -> None:
    store = await open_store()
    assert await store.nebius_file("abc") is None
    await store.remember_nebius_file("abc", "file-1", "train.jsonl", 10)
    await store.close()
    store = await open_store()
    assert await store.nebius_file("abc") == "file-1"
    await store.forget_nebius_file("abc")
    assert await store.nebius_file("abc") is None


async def test_an_idempotency_key_gives_one_job(open_store: OpenStore) -> None:
    store = await open_store()
    assert await store.claim_request("req-1") is True
    assert await store.claim_request("req-1") is False
    await store.finish_request("req-1", "ftjob-1")
    assert await store.request_job("req-1") == "ftjob-1"
    # A finished request is never released for a second job.
    await store.release_request("req-1")
    assert await store.request_job("req-1") == "ftjob-1"


async def test_a_failed_request_may_be_tried_again(open_store: OpenStore) -> None:
    store = await open_store()
    await store.claim_request("req-2")
    await store.release_request("req-2")
    assert await store.claim_request("req-2") is True


async def test_unfinished_watches_survive_a_restart(open_store: OpenStore) -> None:
    store = await open_store()
    await store.add_watch("job-1", "C1", "1.1", "U1")
    await store.add_watch("job-2", "C1", "2.1", "U2")
    await store.update_watch("job-1", last_event_id="ev-5", status="running")
    await store.update_watch("job-2", done=True)
    await store.close()

    (watch,) = await (await open_store()).active_watches()
    assert watch.job_id == "job-1"
    assert watch.last_event_id == "ev-5" and watch.status == "running"
    assert watch.thread_ts == "1.1" and watch.user_id == "U1"


async def test_uploads_are_claimed_once_and_listed_valid_first(open_store: OpenStore) -> None:
    store = await open_store()
    assert await store.claim_upload("F1", "C1", "1.0", "bad.jsonl", "U1") is True
    assert await store.claim_upload("F1", "C1", "1.0", "bad.jsonl", "U1") is False
    await store.finish_upload("F1", sha256="s1", valid=False, fmt="chat", report={"x": 1})
    await store.claim_upload("F2", "C1", "2.0", "good.jsonl", "U1")
    await store.finish_upload("F2", sha256="s2", valid=True, fmt="chat", report={"x": 2})
    await store.claim_upload("F3", "C2", "3.0", "other.jsonl", "U1")
    await store.finish_upload("F3", sha256="s3", valid=True, fmt="chat", report={"x": 3})

    assert [u.name for u in await store.recent_uploads("C1")] == ["good.jsonl", "bad.jsonl"]
    assert (await store.validated_upload_by_sha("s2")).slack_file_id == "F2"
    assert (await store.upload("F1")).report == {"x": 1}


async def test_a_job_request_by_content_is_remembered_across_a_restart(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await open_store()
    assert await store.claim_content("fp", "req-1", **CLAIM) is None
    await store.content_thread("fp", "req-1", "C1", "1.5")
    await store.finish_content("fp", "req-1", "ftjob-1")
    await store.close()

    store = await open_store()
    earlier = await store.claim_content("fp", "req-2", **CLAIM)
    assert earlier is not None
    assert (earlier.job_id, earlier.channel, earlier.thread_ts) == ("ftjob-1", "C1", "1.5")
    # Once the window has passed, the same content is a new request.
    clock.advance(601)
    assert await store.claim_content("fp", "req-3", **CLAIM) is None


async def test_a_request_still_being_started_blocks_its_duplicate_past_the_window(
    store: Store, clock: FakeClock
) -> None:
    await store.claim_content("fp", "req-1", **CLAIM)
    clock.advance(3600)
    assert (await store.claim_content("fp", "req-2", busy=True, **CLAIM)).request_key == "req-1"
    # A failed start lets the same content go again at once.
    await store.release_content("fp", "req-1")
    assert await store.claim_content("fp", "req-2", **CLAIM) is None


async def test_old_event_ids_and_request_keys_are_pruned_after_the_retention(
    store: Store, clock: FakeClock
) -> None:
    await store.claim_event("Ev-old")
    await store.claim_request("req-old")
    await store.claim_content("fp-old", "req-old", user_id="U1", channel="C1", window_s=600)
    clock.advance(RETENTION_S - 60)
    await store.claim_event("Ev-new")

    clock.advance(120)  # the old ones are now past the retention, the new one is not
    assert await store.prune() == 3
    assert await store.claim_event("Ev-new") is False
    assert await store.claim_event("Ev-old") is True  # forgotten: Slack stopped retrying long ago
    assert await store.claim_request("req-old") is True


async def test_pruning_runs_at_start_and_every_so_many_claims(
    open_store: OpenStore, clock: FakeClock
) -> None:
    store = await open_store()
    await store.claim_event("Ev-old")
    await store.close()
    clock.advance(RETENTION_S + 1)

    store = await open_store()  # a restart prunes
    assert await store.claim_event("Ev-old") is True
    clock.advance(RETENTION_S + 1)
    for n in range(PRUNE_EVERY - 1):  # the PRUNE_EVERY-th claim since start prunes
        await store.claim_event(f"Ev-{n}")
    assert await store.claim_event("Ev-old") is True


async def test_a_post_in_flight_stays_pending_across_a_restart_and_done_moves_the_watch(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    await store.add_watch("job-1", "C1", "1.1", "U1")
    await store.add_watch("job-2", "C1", "2.1", "U1")
    posted = await store.outbox_intent("job-1", "events", "C1", "1.1", last_event_id="ev-3")
    await store.outbox_done(posted, "1.5")
    in_flight = await store.outbox_intent(
        "job-1", "events", "C1", "1.1", first_event_id="ev-4", last_event_id="ev-9"
    )
    await store.outbox_intent("job-2", "summary", "C1", "2.1")
    await store.close()

    store = await open_store()
    assert len(await claimed(store)) == 2  # as the restarted watcher does first
    assert [(e.job_id, e.kind) for e in await store.pending_outbox()] == [
        ("job-1", "events"),
        ("job-2", "summary"),
    ]
    (entry,) = await store.pending_outbox("job-1")
    assert (entry.id, entry.first_event_id, entry.last_event_id) == (in_flight.id, "ev-4", "ev-9")
    assert (await store.watch("job-1")).last_event_id == "ev-3"
    await store.outbox_done(entry, None)
    assert (await store.watch("job-1")).last_event_id == "ev-9"
    (summary,) = await store.pending_outbox("job-2")
    await store.outbox_done(summary, "2.9")
    assert (await store.watch("job-2")).done is True
    assert await store.pending_outbox() == []


async def test_a_post_known_not_to_have_been_made_is_discarded(store: Store) -> None:
    await store.add_watch("job-1", "C1", "1.1", "U1")
    entry = await store.outbox_intent("job-1", "events", "C1", "1.1", last_event_id="ev-2")
    await store.outbox_discard(entry)
    assert await store.pending_outbox() == []
    assert (await store.watch("job-1")).last_event_id is None


async def test_done_posts_are_pruned_after_the_retention_and_pending_ones_kept(
    store: Store, clock: FakeClock
) -> None:
    await store.add_watch("job-1", "C1", "1.1", "U1")
    await store.outbox_done(
        await store.outbox_intent("job-1", "events", "C1", "1.1", last_event_id="e1"), "1"
    )
    await store.outbox_intent("job-1", "events", "C1", "1.1", last_event_id="e2")
    clock.advance(RETENTION_S + 1)
    assert await store.prune() == 1
    assert [e.last_event_id for e in await store.pending_outbox()] == ["e2"]
