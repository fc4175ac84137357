"""The store in one SQLite file (WAL): the default, for one bot process on its own disk.

Calls are short single statements, so they run inline on the event loop; one connection is
shared by the process (SQLite serialises writers, WAL lets readers carry on). The async
methods never suspend while a transaction is open, so coroutines cannot interleave in one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from bot.config import DEFAULT_LEASE_S
from bot.store.base import Conn, Step, Store
from bot.store.records import Row

_V1 = (
    """CREATE TABLE IF NOT EXISTS handled_events (
        event_id TEXT PRIMARY KEY,
        handled_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS nebius_files (
        sha256 TEXT PRIMARY KEY,
        file_id TEXT NOT NULL,
        filename TEXT,
        bytes INTEGER,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS idempotency (
        key TEXT PRIMARY KEY,
        job_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS handled_events_by_time ON handled_events(handled_at)",
    "CREATE INDEX IF NOT EXISTS idempotency_by_time ON idempotency(updated_at)",
    # Job requests by content: an identical request soon after is refused (no second paid job).
    """CREATE TABLE IF NOT EXISTS content_requests (
        fingerprint TEXT PRIMARY KEY,
        request_key TEXT NOT NULL,
        user_id TEXT,
        channel TEXT,
        thread_ts TEXT,
        job_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS content_requests_by_time ON content_requests(updated_at)",
    # Job starts in flight, so that a restart can finish what a crash interrupted (see
    # `begin_start`). Never a secret here: `request` is the job body less any W&B key.
    """CREATE TABLE IF NOT EXISTS starts (
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
    )""",
    """CREATE TABLE IF NOT EXISTS watches (
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
    )""",
    """CREATE TABLE IF NOT EXISTS uploads (
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
    )""",
    "CREATE INDEX IF NOT EXISTS uploads_by_channel ON uploads(channel, created_at)",
    "CREATE INDEX IF NOT EXISTS uploads_by_sha ON uploads(sha256)",
    # Posts to job threads: the intent is written before posting and the outcome after, so a
    # restart reads a thread back from Slack only for a post that may have been in flight.
    """CREATE TABLE IF NOT EXISTS outbox (
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
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_by_job ON outbox(job_id, state)",
    "CREATE INDEX IF NOT EXISTS outbox_by_time ON outbox(state, updated_at)",
)


async def _upload_columns(conn: Conn) -> None:
    """A database made before the schema had a version may lack the columns added later."""
    have = {row["name"] for row in await conn.fetch("PRAGMA table_info(uploads)")}
    for column in ("report_ts", "validation_report"):
        if column not in have:
            await conn.run(f"ALTER TABLE uploads ADD COLUMN {column} TEXT")


# Version 2: leases. A watch is held by its owner's session while that session is renewed.
_V2 = (
    """CREATE TABLE sessions (
        session TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        lease_until REAL NOT NULL
    )""",
    "ALTER TABLE watches ADD COLUMN owner TEXT",
    "CREATE INDEX watches_by_owner ON watches(done, owner)",
)

# Version 3: what each job was started from (Retry), and per-channel settings (notify).
_V3 = (
    """CREATE TABLE job_plans (
        job_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        user_id TEXT,
        plan TEXT NOT NULL,
        retry_of TEXT,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX job_plans_by_retry ON job_plans(retry_of)",
    """CREATE TABLE channel_settings (
        channel TEXT PRIMARY KEY,
        notify TEXT NOT NULL,
        updated_by TEXT,
        updated_at REAL NOT NULL
    )""",
)

# Version 4: custom models the bot deployed (one per job and checkpoint), so that a double
# click deploys once, a restart follows a validating one on, and Try it knows its base model.
_V4 = (
    """CREATE TABLE deployments (
        job_id TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        step INTEGER,
        name TEXT,
        requested_name TEXT,
        base_model TEXT,
        state TEXT NOT NULL,
        reason TEXT,
        channel TEXT NOT NULL,
        thread_ts TEXT,
        progress_ts TEXT,
        user_id TEXT,
        system_prompt TEXT,
        session TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (job_id, checkpoint_id)
    )""",
    "CREATE INDEX deployments_by_name ON deployments(name)",
    "CREATE INDEX deployments_by_state ON deployments(state)",
)

MIGRATIONS: tuple[tuple[Step, ...], ...] = (
    (*_V1, _upload_columns),
    _V2,
    _V3,
    _V4,
)


class _SQLiteConn:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [dict(row) for row in self.db.execute(sql, tuple(args)).fetchall()]

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.db.execute(sql, tuple(args)).rowcount


class SQLiteStore(Store):
    """Opens (and migrates) the file at once: usable without `await open()`."""

    def __init__(
        self,
        path: Path | str,
        *,
        now: Callable[[], float] = time.time,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        super().__init__(now=now, lease_s=lease_s)
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._wrapped = _SQLiteConn(self._db)
        self.found_version = _run_now(self._migrate())
        # One process per file: whoever ran on it before is gone (a restart), so its watches
        # and starts are free at once rather than when its lease would lapse.
        self._db.execute("DELETE FROM sessions")
        _run_now(self._begin_session())
        _run_now(self.prune())

    def migrations(self) -> tuple[tuple[Step, ...], ...]:
        return MIGRATIONS

    async def open(self) -> None:
        """Nothing left to do: the constructor opened the file."""

    async def disconnect(self) -> None:
        self._ended = True
        self._db.close()

    @property
    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        yield self._wrapped

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._wrapped
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _run_now(coro: Any) -> Any:
    """Runs a coroutine that never suspends (SQLite's are all inline) to its end, from sync
    code, even inside a running event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a SQLite store call suspended; it must run inline")
