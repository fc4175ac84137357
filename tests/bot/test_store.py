"""The bot's SQLite state survives a restart and answers "seen before?" exactly once."""

from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.store import PRUNE_EVERY, RETENTION_S, Store


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "bot.sqlite3"


def test_the_database_uses_wal(path: Path) -> None:
    store = Store(path)
    assert store.journal_mode == "wal"
    store.close()


def test_an_event_id_is_claimed_once_even_across_a_restart(path: Path) -> None:
    store = Store(path)
    assert store.claim_event("Ev1") is True
    assert store.claim_event("Ev1") is False
    store.close()
    assert Store(path).claim_event("Ev1") is False


def test_nebius_file_ids_are_remembered_by_content_hash(path: Path) -> None:
    store = Store(path)
    assert store.nebius_file("abc") is None
    store.remember_nebius_file("abc", "file-1", "train.jsonl", 10)
    store.close()
    store = Store(path)
    assert store.nebius_file("abc") == "file-1"
    store.forget_nebius_file("abc")
    assert store.nebius_file("abc") is None


def test_an_idempotency_key_gives_one_job(path: Path) -> None:
    store = Store(path)
    assert store.claim_request("req-1") is True
    assert store.claim_request("req-1") is False
    store.finish_request("req-1", "ftjob-1")
    assert store.request_job("req-1") == "ftjob-1"
    # A finished request is never released for a second job.
    store.release_request("req-1")
    assert store.request_job("req-1") == "ftjob-1"


def test_a_failed_request_may_be_tried_again(path: Path) -> None:
    store = Store(path)
    store.claim_request("req-2")
    store.release_request("req-2")
    assert store.claim_request("req-2") is True


def test_unfinished_watches_survive_a_restart(path: Path) -> None:
    store = Store(path)
    store.add_watch("job-1", "C1", "1.1", "1.2", "U1")
    store.add_watch("job-2", "C1", "2.1", None, "U2")
    store.update_watch("job-1", last_event_id="ev-5", status="running")
    store.update_watch("job-2", done=True)
    store.close()

    (watch,) = Store(path).active_watches()
    assert watch.job_id == "job-1"
    assert watch.last_event_id == "ev-5" and watch.status == "running"
    assert watch.card_ts == "1.2" and watch.user_id == "U1"


def test_uploads_are_claimed_once_and_listed_valid_first(path: Path) -> None:
    store = Store(path)
    assert store.claim_upload("F1", "C1", "1.0", "bad.jsonl", "U1") is True
    assert store.claim_upload("F1", "C1", "1.0", "bad.jsonl", "U1") is False
    store.finish_upload("F1", sha256="s1", valid=False, fmt="chat", report={"x": 1})
    store.claim_upload("F2", "C1", "2.0", "good.jsonl", "U1")
    store.finish_upload("F2", sha256="s2", valid=True, fmt="chat", report={"x": 2})
    store.claim_upload("F3", "C2", "3.0", "other.jsonl", "U1")
    store.finish_upload("F3", sha256="s3", valid=True, fmt="chat", report={"x": 3})

    assert [u.name for u in store.recent_uploads("C1")] == ["good.jsonl", "bad.jsonl"]
    assert store.validated_upload_by_sha("s2").slack_file_id == "F2"
    assert store.upload("F1").report == {"x": 1}


def test_a_job_request_by_content_is_remembered_across_a_restart(path: Path) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    store = Store(path, now=clock.monotonic)
    claim = {"user_id": "U1", "channel": "C1", "window_s": 600}
    assert store.claim_content("fp", "req-1", **claim) is None
    store.content_thread("fp", "req-1", "C1", "1.5")
    store.finish_content("fp", "req-1", "ftjob-1")
    store.close()

    store = Store(path, now=clock.monotonic)
    earlier = store.claim_content("fp", "req-2", **claim)
    assert earlier is not None
    assert (earlier.job_id, earlier.channel, earlier.thread_ts) == ("ftjob-1", "C1", "1.5")
    # Once the window has passed, the same content is a new request.
    clock.advance(601)
    assert store.claim_content("fp", "req-3", **claim) is None


def test_a_request_still_being_started_blocks_its_duplicate_past_the_window(path: Path) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    store = Store(path, now=clock.monotonic)
    claim = {"user_id": "U1", "channel": "C1", "window_s": 600}
    store.claim_content("fp", "req-1", **claim)
    clock.advance(3600)
    assert store.claim_content("fp", "req-2", busy=True, **claim).request_key == "req-1"
    # A failed start lets the same content go again at once.
    store.release_content("fp", "req-1")
    assert store.claim_content("fp", "req-2", **claim) is None


def test_old_event_ids_and_request_keys_are_pruned_after_the_retention(path: Path) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    store = Store(path, now=clock.monotonic)
    store.claim_event("Ev-old")
    store.claim_request("req-old")
    store.claim_content("fp-old", "req-old", user_id="U1", channel="C1", window_s=600)
    clock.advance(RETENTION_S - 60)
    store.claim_event("Ev-new")

    clock.advance(120)  # the old ones are now past the retention, the new one is not
    assert store.prune() == 3
    assert store.claim_event("Ev-new") is False
    assert store.claim_event("Ev-old") is True  # forgotten: Slack stopped retrying long ago
    assert store.claim_request("req-old") is True


def test_pruning_runs_at_start_and_every_so_many_claims(path: Path) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    store = Store(path, now=clock.monotonic)
    store.claim_event("Ev-old")
    store.close()
    clock.advance(RETENTION_S + 1)

    store = Store(path, now=clock.monotonic)  # a restart prunes
    assert store.claim_event("Ev-old") is True
    clock.advance(RETENTION_S + 1)
    for n in range(PRUNE_EVERY - 1):  # the PRUNE_EVERY-th claim since start prunes
        store.claim_event(f"Ev-{n}")
    assert store.claim_event("Ev-old") is True


def test_a_database_from_before_the_report_columns_gains_them(path: Path) -> None:
    import sqlite3

    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE uploads (slack_file_id TEXT PRIMARY KEY, channel TEXT NOT NULL, "
        "thread_ts TEXT, name TEXT NOT NULL, user_id TEXT, sha256 TEXT, valid INTEGER, "
        "format TEXT, report TEXT, state TEXT NOT NULL, created_at REAL NOT NULL)"
    )
    old.execute(
        "INSERT INTO uploads VALUES ('F1', 'C1', '1.0', 'a.jsonl', 'U1', 's1', 1, 'chat', "
        "'{}', 'done', 1.0)"
    )
    old.commit()
    old.close()

    store = Store(path)
    assert store.upload("F1").report_ts is None
    store.upload_reported("F1", "1.5")
    store.finish_validation_report("F1", {"role": "validation"})
    upload = store.upload("F1")
    assert upload.report_ts == "1.5" and upload.validation_report == {"role": "validation"}


def test_a_post_in_flight_stays_pending_across_a_restart_and_done_moves_the_watch(
    path: Path,
) -> None:
    store = Store(path)
    store.add_watch("job-1", "C1", "1.1", "1.1", "U1")
    store.add_watch("job-2", "C1", "2.1", "2.1", "U1")
    posted = store.outbox_intent("job-1", "events", "C1", "1.1", last_event_id="ev-3")
    store.outbox_done(posted, "1.5")
    in_flight = store.outbox_intent(
        "job-1", "events", "C1", "1.1", first_event_id="ev-4", last_event_id="ev-9"
    )
    store.outbox_intent("job-2", "summary", "C1", "2.1")
    store.close()

    store = Store(path)
    assert [(e.job_id, e.kind) for e in store.pending_outbox()] == [
        ("job-1", "events"),
        ("job-2", "summary"),
    ]
    (entry,) = store.pending_outbox("job-1")
    assert (entry.id, entry.first_event_id, entry.last_event_id) == (in_flight.id, "ev-4", "ev-9")
    assert store.watch("job-1").last_event_id == "ev-3"
    store.outbox_done(entry, None)
    assert store.watch("job-1").last_event_id == "ev-9"
    (summary,) = store.pending_outbox("job-2")
    store.outbox_done(summary, "2.9")
    assert store.watch("job-2").done is True
    assert store.pending_outbox() == []


def test_a_post_known_not_to_have_been_made_is_discarded(path: Path) -> None:
    store = Store(path)
    store.add_watch("job-1", "C1", "1.1", "1.1", "U1")
    entry = store.outbox_intent("job-1", "events", "C1", "1.1", last_event_id="ev-2")
    store.outbox_discard(entry)
    assert store.pending_outbox() == []
    assert store.watch("job-1").last_event_id is None


def test_done_posts_are_pruned_after_the_retention_and_pending_ones_kept(path: Path) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    store = Store(path, now=clock.monotonic)
    store.add_watch("job-1", "C1", "1.1", "1.1", "U1")
    store.outbox_done(store.outbox_intent("job-1", "events", "C1", "1.1", last_event_id="e1"), "1")
    store.outbox_intent("job-1", "events", "C1", "1.1", last_event_id="e2")
    clock.advance(RETENTION_S + 1)
    assert store.prune() == 1
    assert [e.last_event_id for e in store.pending_outbox()] == ["e2"]
