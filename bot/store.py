"""The bot's state in one SQLite file (WAL): everything a restart must not forget.

Calls are short single statements, so they run inline on the event loop; one connection is
shared by the process (SQLite serialises writers, WAL lets readers carry on).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Slack retries an event for a few minutes at most; a day is well past any redelivery, and
# a job request key or content fingerprint is of no use after that either.
RETENTION_S = 24 * 3600
# Pruning runs at start and then once every this many claims: cheap, and the tables stay small
# however long the bot runs.
PRUNE_EVERY = 500

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
CREATE INDEX IF NOT EXISTS handled_events_by_time ON handled_events(handled_at);
CREATE INDEX IF NOT EXISTS idempotency_by_time ON idempotency(updated_at);
-- Job requests by content: an identical request soon after is refused (no second paid job).
CREATE TABLE IF NOT EXISTS content_requests (
    fingerprint TEXT PRIMARY KEY,
    request_key TEXT NOT NULL,
    user_id TEXT,
    channel TEXT,
    thread_ts TEXT,
    job_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS content_requests_by_time ON content_requests(updated_at);
-- Job starts in flight, so that a restart can finish what a crash interrupted (see
-- `begin_start`). Never a secret here: `request` is the job body less any W&B key.
CREATE TABLE IF NOT EXISTS starts (
    request_key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    session TEXT NOT NULL,
    channel TEXT NOT NULL,
    user_id TEXT NOT NULL,
    message_ts TEXT,
    step_ts TEXT,
    plan TEXT NOT NULL,
    request TEXT,
    create_sent_at REAL,
    phase TEXT NOT NULL,
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
    created_at REAL NOT NULL,
    report_ts TEXT,
    validation_report TEXT
);
CREATE INDEX IF NOT EXISTS uploads_by_channel ON uploads(channel, created_at);
CREATE INDEX IF NOT EXISTS uploads_by_sha ON uploads(sha256);
-- Posts to job threads: the intent is written before posting and the outcome after, so a
-- restart reads a thread back from Slack only for a post that may have been in flight.
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    thread_ts TEXT NOT NULL,
    first_event_id TEXT,
    last_event_id TEXT,
    state TEXT NOT NULL,
    ts TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_job ON outbox(job_id, state);
CREATE INDEX IF NOT EXISTS outbox_by_time ON outbox(state, updated_at);
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
class OutboxEntry:
    """One post to a job's thread: "events" (first to last event id) or the end "summary"."""

    id: int
    job_id: str
    kind: str
    channel: str
    thread_ts: str
    first_event_id: str | None
    last_event_id: str | None
    state: str  # "pending" until Slack took it, then "done"
    ts: str | None


@dataclass(frozen=True)
class ContentRequest:
    """A job request remembered by its content fingerprint (see `claim_content`)."""

    fingerprint: str
    request_key: str
    user_id: str | None
    channel: str | None
    thread_ts: str | None
    job_id: str | None
    created_at: float
    # When it was claimed, or when its job was created: the duplicate window counts from here.
    updated_at: float


@dataclass(frozen=True)
class PendingStart:
    """A job start as far as it got: enough to finish it, or offer it again, after a crash."""

    request_key: str
    fingerprint: str
    channel: str
    user_id: str
    # The request's message (the thread's parent, the card-to-be) and its step message.
    message_ts: str | None
    step_ts: str | None
    # What was asked (files by Slack file id, settings, W&B names): see bot.core.jobs.
    plan: dict[str, Any]
    # The job body as sent, without secrets; None until the create request is sent.
    request: dict[str, Any] | None
    create_sent_at: float | None
    phase: str  # START_PHASES
    updated_at: float


# "preparing": uploading or waiting for Nebius's file processing, no job asked for yet;
# "creating": the create request was sent; "interrupted": a restart found it unfinished and
# said so, and it may be started again (once).
START_PHASES = ("preparing", "creating", "interrupted")


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
    # The message with the report (its thread is the upload's), to update it in place.
    report_ts: str | None = None
    # The report of the same content checked as a validation file, once someone uses it as one.
    validation_report: dict[str, Any] | None = None


class Store:
    def __init__(self, path: Path | str, *, now: Callable[[], float] = time.time) -> None:
        # Wall-clock seconds: what is stored must still mean something after a restart.
        self.now = now
        self._claims = 0
        # Which process wrote a start: a restart resolves only those of earlier processes.
        self.session = uuid.uuid4().hex
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._add_missing_columns()
        self.prune()

    def _add_missing_columns(self) -> None:
        """A database made by an older version gains the columns added since."""
        have = {row["name"] for row in self._db.execute("PRAGMA table_info(uploads)")}
        for column in ("report_ts", "validation_report"):
            if column not in have:
                self._db.execute(f"ALTER TABLE uploads ADD COLUMN {column} TEXT")

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
            (event_id, self.now()),
        )
        self._claimed()
        return cur.rowcount == 1

    def _claimed(self) -> None:
        self._claims += 1
        if self._claims % PRUNE_EVERY == 0:
            self.prune()

    def prune(self, retention_s: float = RETENTION_S) -> int:
        """Forgets handled event ids, request keys and content fingerprints older than
        `retention_s` (long past Slack's retries); returns how many rows went."""
        cutoff = self.now() - retention_s
        removed = 0
        for sql in (
            "DELETE FROM handled_events WHERE handled_at < ?",
            "DELETE FROM idempotency WHERE updated_at < ?",
            "DELETE FROM content_requests WHERE updated_at < ?",
            "DELETE FROM starts WHERE phase = 'interrupted' AND updated_at < ?",
            "DELETE FROM outbox WHERE state = 'done' AND updated_at < ?",
        ):
            removed += self._db.execute(sql, (cutoff,)).rowcount
        return removed

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
            (sha256, file_id, filename, size, self.now()),
        )

    def forget_nebius_file(self, sha256: str) -> None:
        self._db.execute("DELETE FROM nebius_files WHERE sha256 = ?", (sha256,))

    # Idempotency keys: one job per request, however often it is delivered or clicked.
    def claim_request(self, key: str) -> bool:
        """True for the first claim of a key; False when it was claimed before."""
        now = self.now()
        cur = self._db.execute(
            "INSERT OR IGNORE INTO idempotency(key, created_at, updated_at) VALUES (?, ?, ?)",
            (key, now, now),
        )
        self._claimed()
        return cur.rowcount == 1

    def request_job(self, key: str) -> str | None:
        row = self._db.execute("SELECT job_id FROM idempotency WHERE key = ?", (key,)).fetchone()
        return row["job_id"] if row else None

    def finish_request(self, key: str, job_id: str) -> None:
        self._db.execute(
            "UPDATE idempotency SET job_id = ?, updated_at = ? WHERE key = ?",
            (job_id, self.now(), key),
        )

    def release_request(self, key: str) -> None:
        """A request that failed before a job existed may be tried again."""
        self._db.execute("DELETE FROM idempotency WHERE key = ? AND job_id IS NULL", (key,))

    # Job requests by content: two clicks or a command typed twice must not pay for two jobs.
    def claim_content(
        self,
        fingerprint: str,
        key: str,
        *,
        user_id: str | None,
        channel: str | None,
        window_s: float,
        busy: bool = False,
    ) -> ContentRequest | None:
        """Claims a request's content: None when it may go ahead, else the earlier identical
        request that stops it (claimed or created less than `window_s` ago, or `busy`: still
        being started by this process)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            earlier = self.content_request(fingerprint)
            now = self.now()
            if earlier is not None and (busy or now - earlier.updated_at < window_s):
                return earlier
            self._db.execute(
                "INSERT OR REPLACE INTO content_requests(fingerprint, request_key, user_id, "
                "channel, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (fingerprint, key, user_id, channel, now, now),
            )
            return None
        finally:
            self._db.execute("COMMIT")

    def content_request(self, fingerprint: str) -> ContentRequest | None:
        row = self._db.execute(
            "SELECT * FROM content_requests WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return ContentRequest(**dict(row)) if row else None

    def content_thread(self, fingerprint: str, key: str, channel: str, thread_ts: str) -> None:
        """Where the request's thread is, so a duplicate can be pointed at it."""
        self._db.execute(
            "UPDATE content_requests SET channel = ?, thread_ts = ? "
            "WHERE fingerprint = ? AND request_key = ?",
            (channel, thread_ts, fingerprint, key),
        )

    def finish_content(self, fingerprint: str, key: str, job_id: str) -> None:
        self._db.execute(
            "UPDATE content_requests SET job_id = ?, updated_at = ? "
            "WHERE fingerprint = ? AND request_key = ?",
            (job_id, self.now(), fingerprint, key),
        )

    def release_content(self, fingerprint: str, key: str) -> None:
        """A request that failed before its job existed: the same content may be tried again."""
        self._db.execute(
            "DELETE FROM content_requests WHERE fingerprint = ? AND request_key = ? "
            "AND job_id IS NULL",
            (fingerprint, key),
        )

    # Job starts in flight: written as a start goes, removed once it ends either way.
    def begin_start(
        self,
        key: str,
        fingerprint: str,
        *,
        channel: str,
        user_id: str,
        plan: dict[str, Any],
    ) -> None:
        now = self.now()
        self._db.execute(
            "INSERT OR REPLACE INTO starts(request_key, fingerprint, session, channel, user_id, "
            "plan, phase, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'preparing', ?, ?)",
            (key, fingerprint, self.session, channel, user_id, json.dumps(plan), now, now),
        )

    def start_messages(self, key: str, message_ts: str, step_ts: str | None) -> None:
        self._db.execute(
            "UPDATE starts SET message_ts = ?, step_ts = ?, updated_at = ? WHERE request_key = ?",
            (message_ts, step_ts, self.now(), key),
        )

    def start_creating(self, key: str, request: dict[str, Any]) -> None:
        """Just before the create request goes out: from here a job may exist."""
        now = self.now()
        self._db.execute(
            "UPDATE starts SET request = ?, create_sent_at = ?, phase = 'creating', "
            "updated_at = ? WHERE request_key = ?",
            (json.dumps(request), now, now, key),
        )

    def start_interrupted(self, key: str) -> None:
        self._db.execute(
            "UPDATE starts SET phase = 'interrupted', session = ?, updated_at = ? "
            "WHERE request_key = ?",
            (self.session, self.now(), key),
        )

    def end_start(self, key: str) -> None:
        self._db.execute("DELETE FROM starts WHERE request_key = ?", (key,))

    def take_interrupted_start(self, key: str) -> PendingStart | None:
        """The interrupted start `key`, removed so that it is started again once only."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            start = self.pending_start(key)
            if start is None or start.phase != "interrupted":
                return None
            self._db.execute("DELETE FROM starts WHERE request_key = ?", (key,))
            return start
        finally:
            self._db.execute("COMMIT")

    def pending_start(self, key: str) -> PendingStart | None:
        row = self._db.execute("SELECT * FROM starts WHERE request_key = ?", (key,)).fetchone()
        return _pending_start(row) if row else None

    def unfinished_starts(self) -> list[PendingStart]:
        """Starts that earlier processes left in flight (a crash, a shutdown), oldest first."""
        rows = self._db.execute(
            "SELECT * FROM starts WHERE phase IN ('preparing', 'creating') AND session != ? "
            "ORDER BY created_at",
            (self.session,),
        )
        return [_pending_start(r) for r in rows]

    def jobs_watched_elsewhere(self, channel: str, thread_ts: str | None) -> set[str]:
        """The jobs that belong to threads other than this one (so to other requests)."""
        rows = self._db.execute(
            "SELECT job_id FROM watches WHERE NOT (channel = ? AND thread_ts IS ?)",
            (channel, thread_ts),
        )
        return {row["job_id"] for row in rows}

    # Watches: one per job thread; a restart resumes every one that is not done.
    def add_watch(
        self, job_id: str, channel: str, thread_ts: str, card_ts: str | None, user_id: str | None
    ) -> None:
        now = self.now()
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
        sets, args = ["updated_at = ?"], [self.now()]
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

    # The outbox: every post to a job thread, intent before posting and outcome after.
    def outbox_intent(
        self,
        job_id: str,
        kind: str,
        channel: str,
        thread_ts: str,
        *,
        first_event_id: str | None = None,
        last_event_id: str | None = None,
    ) -> OutboxEntry:
        """Records a post about to be made ("pending")."""
        now = self.now()
        cur = self._db.execute(
            "INSERT INTO outbox(job_id, kind, channel, thread_ts, first_event_id, "
            "last_event_id, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (job_id, kind, channel, thread_ts, first_event_id, last_event_id, now, now),
        )
        return OutboxEntry(
            int(cur.lastrowid or 0),
            job_id,
            kind,
            channel,
            thread_ts,
            first_event_id,
            last_event_id,
            "pending",
            None,
        )

    def outbox_done(self, entry: OutboxEntry, ts: str | None) -> None:
        """The post reached the thread: marks it done and, in the same transaction, moves
        the watch on (its last event posted, or done after the summary)."""
        now = self.now()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "UPDATE outbox SET state = 'done', ts = ?, updated_at = ? WHERE id = ?",
                (ts, now, entry.id),
            )
            if entry.kind == "summary":
                self._db.execute(
                    "UPDATE watches SET done = 1, updated_at = ? WHERE job_id = ?",
                    (now, entry.job_id),
                )
            elif entry.last_event_id is not None:
                self._db.execute(
                    "UPDATE watches SET last_event_id = ?, updated_at = ? WHERE job_id = ?",
                    (entry.last_event_id, now, entry.job_id),
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def outbox_discard(self, entry: OutboxEntry) -> None:
        """The post certainly did not reach the thread: forget it (the next poll posts again
        from the watch's last recorded event)."""
        self._db.execute("DELETE FROM outbox WHERE id = ? AND state = 'pending'", (entry.id,))

    def pending_outbox(self, job_id: str | None = None) -> list[OutboxEntry]:
        """Posts that may have been in flight (all jobs, or one), oldest first."""
        if job_id is None:
            rows = self._db.execute("SELECT * FROM outbox WHERE state = 'pending' ORDER BY id")
        else:
            rows = self._db.execute(
                "SELECT * FROM outbox WHERE job_id = ? AND state = 'pending' ORDER BY id",
                (job_id,),
            )
        return [_outbox_entry(r) for r in rows]

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
            (slack_file_id, channel, thread_ts, name, user_id, self.now()),
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

    def upload_reported(self, slack_file_id: str, report_ts: str) -> None:
        self._db.execute(
            "UPDATE uploads SET report_ts = ? WHERE slack_file_id = ?", (report_ts, slack_file_id)
        )

    def finish_validation_report(self, slack_file_id: str, report: dict[str, Any]) -> None:
        self._db.execute(
            "UPDATE uploads SET validation_report = ? WHERE slack_file_id = ?",
            (json.dumps(report), slack_file_id),
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


def _outbox_entry(row: sqlite3.Row) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"],
        job_id=row["job_id"],
        kind=row["kind"],
        channel=row["channel"],
        thread_ts=row["thread_ts"],
        first_event_id=row["first_event_id"],
        last_event_id=row["last_event_id"],
        state=row["state"],
        ts=row["ts"],
    )


def _pending_start(row: sqlite3.Row) -> PendingStart:
    return PendingStart(
        request_key=row["request_key"],
        fingerprint=row["fingerprint"],
        channel=row["channel"],
        user_id=row["user_id"],
        message_ts=row["message_ts"],
        step_ts=row["step_ts"],
        plan=json.loads(row["plan"]),
        request=json.loads(row["request"]) if row["request"] else None,
        create_sent_at=row["create_sent_at"],
        phase=row["phase"],
        updated_at=row["updated_at"],
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
        report_ts=row["report_ts"],
        validation_report=(
            json.loads(row["validation_report"]) if row["validation_report"] else None
        ),
    )
