"""The store in PostgreSQL, shared by several bot processes (psycopg 3 and its async pool).

Statements are the shared ones of `Store` (written with `?`, sent with psycopg's `%s`);
claims of watches skip rows another process is claiming (`FOR UPDATE SKIP LOCKED`), and a
migration takes an advisory lock, so processes starting together migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bot.clock import Clock
from bot.config import DEFAULT_LEASE_S
from bot.store.base import Conn, Store, StoreError
from bot.store.records import Row
from bot.store.schema import POSTGRESQL, Migrations, migrations

# Any constant: the key of the advisory lock that migrations take.
_MIGRATION_LOCK = 0x58474C53  # "XGLS"
POOL_MAX = 10
CONNECT_TIMEOUT_S = 10.0


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
        clock: Clock | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        pool_max: int = POOL_MAX,
    ) -> None:
        super().__init__(clock=clock, lease_s=lease_s)
        self._url = url
        self._pool_max = pool_max
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        # The lease's own connection (see `_lease_conn`), opened with the pool; one renewal
        # at a time on it.
        self._lease_link: psycopg.AsyncConnection[Any] | None = None
        self._lease_lock = asyncio.Lock()
        self.found_version: int | None = None

    def migrations(self) -> Migrations:
        return migrations(POSTGRESQL)

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
            (self.clock.time() - self.takeover_grace_s,),
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
