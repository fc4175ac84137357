"""The store's record of job starts in flight: what a restart needs, and nothing secret."""

from __future__ import annotations

from pathlib import Path

from bot.store import RETENTION_S, Store

PLAN = {"model": "m", "training": "F1", "training_name": "train.jsonl", "wandb": None}


def begin(store: Store, key: str = "command:t1") -> None:
    store.begin_start(key, "fp-1", channel="C1", user_id="U1", plan=PLAN)


def test_a_start_of_an_earlier_process_is_unfinished_one_of_this_process_is_not(
    tmp_path: Path,
) -> None:
    earlier = Store(tmp_path / "bot.sqlite3")
    begin(earlier)
    earlier.start_messages("command:t1", "111.1", "111.2")
    earlier.start_creating("command:t1", {"model": "m", "training_file": "file-1"})
    assert earlier.unfinished_starts() == []  # its own starts are still running
    earlier.close()

    later = Store(tmp_path / "bot.sqlite3")
    begin(later, "command:t2")  # a start of the new process, under way
    (start,) = later.unfinished_starts()
    assert start.request_key == "command:t1" and start.phase == "creating"
    assert (start.message_ts, start.step_ts, start.user_id) == ("111.1", "111.2", "U1")
    assert start.plan == PLAN and start.request == {"model": "m", "training_file": "file-1"}
    assert start.create_sent_at is not None


def test_an_interrupted_start_is_taken_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite3")
    begin(store)
    assert store.take_interrupted_start("command:t1") is None  # not interrupted: running
    store.start_interrupted("command:t1")

    taken = store.take_interrupted_start("command:t1")
    assert taken is not None and taken.plan == PLAN
    assert store.take_interrupted_start("command:t1") is None
    assert store.pending_start("command:t1") is None


def test_interrupted_starts_are_forgotten_after_the_retention_running_ones_are_not(
    tmp_path: Path,
) -> None:
    now = [1_800_000_000.0]
    store = Store(tmp_path / "bot.sqlite3", now=lambda: now[0])
    begin(store, "old-interrupted")
    store.start_interrupted("old-interrupted")
    begin(store, "old-running")
    now[0] += RETENTION_S + 1

    store.prune()

    assert store.pending_start("old-interrupted") is None
    assert store.pending_start("old-running") is not None


def test_jobs_of_other_threads_are_known(tmp_path: Path) -> None:
    store = Store(tmp_path / "bot.sqlite3")
    store.add_watch("job-a", "C1", "111.1", "111.1", "U1")
    store.add_watch("job-b", "C1", "222.2", "222.2", "U2")
    store.add_watch("job-c", "C2", "111.1", "111.1", "U2")

    assert store.jobs_watched_elsewhere("C1", "111.1") == {"job-b", "job-c"}
    assert store.jobs_watched_elsewhere("C1", None) == {"job-a", "job-b", "job-c"}
