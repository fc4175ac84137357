"""The store in one SQLite file (WAL): the default, for one bot process on its own disk.

Calls are short single statements, so they run inline on the event loop; one connection is
shared by the process (SQLite serialises writers, WAL lets readers carry on). The async
methods never suspend while a transaction is open, so coroutines cannot interleave in one.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bot.clock import Clock
from bot.config import DEFAULT_LEASE_S
from bot.store.base import Conn, Store
from bot.store.records import Row
from bot.store.schema import SQLITE, Migrations, migrations


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
        clock: Clock | None = None,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        super().__init__(clock=clock, lease_s=lease_s)
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

    def migrations(self) -> Migrations:
        return migrations(SQLITE)

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
