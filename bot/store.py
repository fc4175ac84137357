"""The bot's state in one SQLite file (WAL): everything a restart must not forget.

Calls are short single statements, so they run inline on the event loop; one connection is
shared by the process (SQLite serialises writers, WAL lets readers carry on).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS handled_events (
    event_id TEXT PRIMARY KEY,
    handled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS nebius_files (
    sha256 TEXT PRIMARY KEY,
    file_id TEXT NOT NULL,
    filename TEXT,
    bytes INTEGER,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    job_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS watches (
    job_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    card_ts TEXT,
    user_id TEXT,
    last_event_id TEXT,
    status TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    slack_file_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    thread_ts TEXT,
    name TEXT NOT NULL,
    user_id TEXT,
    sha256 TEXT,
    valid INTEGER,
    format TEXT,
    report TEXT,
    state TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_channel ON uploads(channel, created_at);
CREATE INDEX IF NOT EXISTS uploads_by_sha ON uploads(sha256);
"""


@dataclass(frozen=True)
class Watch:
    job_id: str
    channel: str
    thread_ts: str
    card_ts: str | None
    user_id: str | None
    last_event_id: str | None
    status: str | None
    done: bool


@dataclass(frozen=True)
class Upload:
    slack_file_id: str
    channel: str
    thread_ts: str | None
    name: str
    user_id: str | None
    sha256: str | None
    valid: bool | None
    format: str | None
    report: dict[str, Any] | None
    state: str  # "validating" | "done" | "failed"
    created_at: float


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @property
    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    # Slack event ids: Slack redelivers an event it thinks was not acknowledged.
    def claim_event(self, event_id: str) -> bool:
        """True the first time an event id is seen, False for every redelivery."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO handled_events(event_id, handled_at) VALUES (?, ?)",
            (event_id, time.time()),
        )
        return cur.rowcount == 1

    # Nebius file ids by content hash: each content is uploaded once.
    def nebius_file(self, sha256: str) -> str | None:
        row = self._db.execute(
            "SELECT file_id FROM nebius_files WHERE sha256 = ?", (sha256,)
        ).fetchone()
        return row["file_id"] if row else None

    def remember_nebius_file(
        self, sha256: str, file_id: str, filename: str | None, size: int | None
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO nebius_files(sha256, file_id, filename, bytes, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (sha256, file_id, filename, size, time.time()),
        )

    def forget_nebius_file(self, sha256: str) -> None:
        self._db.execute("DELETE FROM nebius_files WHERE sha256 = ?", (sha256,))

    # Idempotency keys: one job per request, however often it is delivered or clicked.
    def claim_request(self, key: str) -> bool:
        """True for the first claim of a key; False when it was claimed before."""
        now = time.time()
        cur = self._db.execute(
            "INSERT OR IGNORE INTO idempotency(key, created_at, updated_at) VALUES (?, ?, ?)",
            (key, now, now),
        )
        return cur.rowcount == 1

    def request_job(self, key: str) -> str | None:
        row = self._db.execute("SELECT job_id FROM idempotency WHERE key = ?", (key,)).fetchone()
        return row["job_id"] if row else None

    def finish_request(self, key: str, job_id: str) -> None:
        self._db.execute(
            "UPDATE idempotency SET job_id = ?, updated_at = ? WHERE key = ?",
            (job_id, time.time(), key),
        )

    def release_request(self, key: str) -> None:
        """A request that failed before a job existed may be tried again."""
        self._db.execute("DELETE FROM idempotency WHERE key = ? AND job_id IS NULL", (key,))

    # Watches: one per job thread; a restart resumes every one that is not done.
    def add_watch(
        self, job_id: str, channel: str, thread_ts: str, card_ts: str | None, user_id: str | None
    ) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO watches(job_id, channel, thread_ts, card_ts, user_id, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id) DO UPDATE SET "
            "channel = excluded.channel, thread_ts = excluded.thread_ts, "
            "card_ts = excluded.card_ts, user_id = excluded.user_id, done = 0, "
            "updated_at = excluded.updated_at",
            (job_id, channel, thread_ts, card_ts, user_id, now, now),
        )

    def watch(self, job_id: str) -> Watch | None:
        row = self._db.execute("SELECT * FROM watches WHERE job_id = ?", (job_id,)).fetchone()
        return _watch(row) if row else None

    def active_watches(self) -> list[Watch]:
        rows = self._db.execute("SELECT * FROM watches WHERE done = 0 ORDER BY created_at")
        return [_watch(r) for r in rows]

    def update_watch(
        self,
        job_id: str,
        *,
        last_event_id: str | None = None,
        status: str | None = None,
        card_ts: str | None = None,
        done: bool | None = None,
    ) -> None:
        sets, args = ["updated_at = ?"], [time.time()]
        for column, value in (
            ("last_event_id", last_event_id),
            ("status", status),
            ("card_ts", card_ts),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        if done is not None:
            sets.append("done = ?")
            args.append(int(done))
        args.append(job_id)
        self._db.execute(f"UPDATE watches SET {', '.join(sets)} WHERE job_id = ?", args)

    # Uploads seen in channels: dedupe by Slack file id, reuse reports by content hash.
    def claim_upload(
        self,
        slack_file_id: str,
        channel: str,
        thread_ts: str | None,
        name: str,
        user_id: str | None,
    ) -> bool:
        """True the first time a Slack file is seen; the caller then validates it."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO uploads(slack_file_id, channel, thread_ts, name, user_id, "
            "state, created_at) VALUES (?, ?, ?, ?, ?, 'validating', ?)",
            (slack_file_id, channel, thread_ts, name, user_id, time.time()),
        )
        return cur.rowcount == 1

    def finish_upload(
        self,
        slack_file_id: str,
        *,
        sha256: str | None,
        valid: bool | None,
        fmt: str | None,
        report: dict[str, Any] | None,
        state: str = "done",
    ) -> None:
        self._db.execute(
            "UPDATE uploads SET sha256 = ?, valid = ?, format = ?, report = ?, state = ? "
            "WHERE slack_file_id = ?",
            (
                sha256,
                None if valid is None else int(valid),
                fmt,
                json.dumps(report) if report is not None else None,
                state,
                slack_file_id,
            ),
        )

    def upload(self, slack_file_id: str) -> Upload | None:
        row = self._db.execute(
            "SELECT * FROM uploads WHERE slack_file_id = ?", (slack_file_id,)
        ).fetchone()
        return _upload(row) if row else None

    def validated_upload_by_sha(self, sha256: str) -> Upload | None:
        """An earlier upload of the same content whose report can be reused."""
        row = self._db.execute(
            "SELECT * FROM uploads WHERE sha256 = ? AND state = 'done' AND report IS NOT NULL "
            "ORDER BY created_at LIMIT 1",
            (sha256,),
        ).fetchone()
        return _upload(row) if row else None

    def recent_uploads(self, channel: str, limit: int = 20) -> list[Upload]:
        """The channel's recent JSONL uploads, valid ones first, newest first within each."""
        rows = self._db.execute(
            "SELECT * FROM uploads WHERE channel = ? AND state = 'done' "
            "ORDER BY valid DESC, created_at DESC LIMIT ?",
            (channel, limit),
        )
        return [_upload(r) for r in rows]


def _watch(row: sqlite3.Row) -> Watch:
    return Watch(
        job_id=row["job_id"],
        channel=row["channel"],
        thread_ts=row["thread_ts"],
        card_ts=row["card_ts"],
        user_id=row["user_id"],
        last_event_id=row["last_event_id"],
        status=row["status"],
        done=bool(row["done"]),
    )


def _upload(row: sqlite3.Row) -> Upload:
    return Upload(
        slack_file_id=row["slack_file_id"],
        channel=row["channel"],
        thread_ts=row["thread_ts"],
        name=row["name"],
        user_id=row["user_id"],
        sha256=row["sha256"],
        valid=None if row["valid"] is None else bool(row["valid"]),
        format=row["format"],
        report=json.loads(row["report"]) if row["report"] else None,
        state=row["state"],
        created_at=row["created_at"],
    )
