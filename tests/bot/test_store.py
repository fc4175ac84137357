"""The bot's SQLite state survives a restart and answers "seen before?" exactly once."""

from pathlib import Path

import pytest

from bot.store import Store


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
