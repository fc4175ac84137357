"""The store in PostgreSQL, shared by several bot processes (psycopg 3 and its async pool).

Statements are the shared ones of `Store` (written with `?`, sent with psycopg's `%s`);
claims of watches skip rows another process is claiming (`FOR UPDATE SKIP LOCKED`), and a
migration takes an advisory lock, so processes starting together migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bot.config import DEFAULT_LEASE_S
from bot.store.base import Conn, Step, Store, StoreError
from bot.store.records import Row

# Any constant: the key of the advisory lock that migrations take.
_MIGRATION_LOCK = 0x58474C53  # "XGLS"
POOL_MAX = 10
CONNECT_TIMEOUT_S = 10.0

_V1 = (
    """CREATE TABLE handled_events (
        event_id TEXT PRIMARY KEY,
        handled_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE nebius_files (
        sha256 TEXT PRIMARY KEY,
        file_id TEXT NOT NULL,
        filename TEXT,
        bytes BIGINT,
        created_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE idempotency (
        key TEXT PRIMARY KEY,
        job_id TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX handled_events_by_time ON handled_events(handled_at)",
    "CREATE INDEX idempotency_by_time ON idempotency(updated_at)",
    """CREATE TABLE content_requests (
        fingerprint TEXT PRIMARY KEY,
        request_key TEXT NOT NULL,
        user_id TEXT,
        channel TEXT,
        thread_ts TEXT,
        job_id TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX content_requests_by_time ON content_requests(updated_at)",
    """CREATE TABLE starts (
        request_key TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        session TEXT NOT NULL,
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        message_ts TEXT,
        step_ts TEXT,
        plan TEXT NOT NULL,
        request TEXT,
        create_sent_at DOUBLE PRECISION,
        phase TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE watches (
        job_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        card_ts TEXT,
        user_id TEXT,
        last_event_id TEXT,
        status TEXT,
        done INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    """CREATE TABLE uploads (
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
        created_at DOUBLE PRECISION NOT NULL,
        report_ts TEXT,
        validation_report TEXT
    )""",
    "CREATE INDEX uploads_by_channel ON uploads(channel, created_at)",
    "CREATE INDEX uploads_by_sha ON uploads(sha256)",
    """CREATE TABLE outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        first_event_id TEXT,
        last_event_id TEXT,
        state TEXT NOT NULL,
        ts TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX outbox_by_job ON outbox(job_id, state)",
    "CREATE INDEX outbox_by_time ON outbox(state, updated_at)",
)

# Version 2: leases (as in SQLite's).
_V2 = (
    """CREATE TABLE sessions (
        session TEXT PRIMARY KEY,
        started_at DOUBLE PRECISION NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL
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
        created_at DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX job_plans_by_retry ON job_plans(retry_of)",
    """CREATE TABLE channel_settings (
        channel TEXT PRIMARY KEY,
        notify TEXT NOT NULL,
        updated_by TEXT,
        updated_at DOUBLE PRECISION NOT NULL
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
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (job_id, checkpoint_id)
    )""",
    "CREATE INDEX deployments_by_name ON deployments(name)",
    "CREATE INDEX deployments_by_state ON deployments(state)",
)

MIGRATIONS: tuple[tuple[Step, ...], ...] = (_V1, _V2, _V3, _V4)


def _sql(statement: str) -> str:
    # The shared statements hold no literal `?` or `%`: each `?` is a parameter.
    return statement.replace("?", "%s")


class _PgConn:
    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        cur = await self.conn.execute(_sql(sql), tuple(args))
        return await cur.fetchall() if cur.description else []

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        cur = await self.conn.execute(_sql(sql), tuple(args))
        return max(cur.rowcount, 0)


class PostgresStore(Store):
    """`await open()` before use: it connects, migrates and begins the session."""

    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(
        self,
        url: str,
        *,
        now: Callable[[], float] = time.time,
        lease_s: float = DEFAULT_LEASE_S,
        pool_max: int = POOL_MAX,
    ) -> None:
        super().__init__(now=now, lease_s=lease_s)
        self._url = url
        self._pool_max = pool_max
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        # The lease's own connection (see `_lease_conn`), opened with the pool; one renewal
        # at a time on it.
        self._lease_link: psycopg.AsyncConnection[Any] | None = None
        self._lease_lock = asyncio.Lock()
        self.found_version: int | None = None

    def migrations(self) -> tuple[tuple[Step, ...], ...]:
        return MIGRATIONS

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._pool_max,
            kwargs={"autocommit": True, "row_factory": dict_row},
            open=False,
            timeout=CONNECT_TIMEOUT_S,
            name="xgenlens-store",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except Exception as error:
            await pool.close()
            raise StoreError(
                f"cannot reach the database at {redacted_url(self._url)} "
                f"(XGENLENS_DATABASE_URL): {type(error).__name__}"
            ) from None
        self._pool = pool
        self.found_version = await self._migrate()
        await self._begin_session()
        await self.prune()
        async with self._lease_conn():
            pass  # connected now, not at the first renewal (which may come in a busy moment)

    async def disconnect(self) -> None:
        self._ended = True
        if self._lease_link is not None:
            link, self._lease_link = self._lease_link, None
            await link.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @contextlib.asynccontextmanager
    async def _lease_conn(self) -> AsyncIterator[Conn]:
        """A connection of the lease's own, outside the pool: polls holding every pooled
        connection cannot make a renewal wait (a lease that lapsed so, under load, let others
        take watches over while this process still posted). Reconnects after a failure."""
        self._opened()
        async with self._lease_lock:
            if self._lease_link is None or self._lease_link.closed:
                try:
                    self._lease_link = await psycopg.AsyncConnection.connect(
                        self._url,
                        autocommit=True,
                        row_factory=dict_row,
                        connect_timeout=int(CONNECT_TIMEOUT_S),
                    )
                except psycopg.Error as error:
                    raise StoreError(
                        f"cannot reach the database at {redacted_url(self._url)} "
                        f"(XGENLENS_DATABASE_URL): {type(error).__name__}"
                    ) from None
            try:
                yield _PgConn(self._lease_link)
            except psycopg.OperationalError:
                link, self._lease_link = self._lease_link, None
                await link.close()
                raise

    async def _not_live(self, column: str) -> tuple[str, list[Any]]:
        """The live sessions read first and compared on the row itself: a claim that waited
        for another's lock rechecks only the row (READ COMMITTED), so the condition must be
        the row's alone; a subquery there would see the sessions as they were."""
        rows = await self._fetch(
            "SELECT session FROM sessions WHERE lease_until >= ?",
            (self.now() - self.takeover_grace_s,),
        )
        live = sorted({self.session, *(row["session"] for row in rows)})
        return f"NOT ({column} = ANY(?))", [live]

    async def _lock_schema(self, conn: Conn) -> None:
        await conn.run("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def _opened(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise StoreError("the PostgreSQL store was used before `await store.open()`")
        return self._pool

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        async with self._opened().connection() as conn:
            yield _PgConn(conn)

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        async with self._opened().connection() as conn, conn.transaction():
            yield _PgConn(conn)


def redacted_url(url: str) -> str:
    """The URL without its password, for messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    user = info.get("user") or ""
    return f"postgresql://{user + '@' if user else ''}{database_address(url)}"


def database_address(url: str) -> str:
    """Where the database is, as `host:port/dbname` (nothing else of the URL: no user, no
    password, no options), for the bot's first lines of output."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname', '')}"
