"""The store's tests run against both databases: SQLite in a temporary file, and PostgreSQL
in a database of the test run's own (created here, dropped at the end) on the server at
127.0.0.1:5432, or at XGENLENS_TEST_DATABASE_URL. Without a server the PostgreSQL runs skip.

Every store a test opens runs on the test's fake clock (`clock`) with a lease of LEASE_S,
unless the test asks for others; the watcher's fixtures (`world`, `nebius_jobs`) are here
for the tests of several processes watching jobs."""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest

from bot.store import SQLiteStore, Store, Watch
from tests.bot.fake_clock import FakeClock
from tests.bot.store.postgres import empty_schema, server_url, temporary_database
from tests.bot.watching import FakeJobs, start_watch

SKIP_POSTGRES = (
    "PostgreSQL tests skipped: no server at 127.0.0.1:5432 "
    "(set XGENLENS_TEST_DATABASE_URL to run them)"
)

# Opens a store on the test's database, as a (re)started process would.
OpenStore = Callable[..., Awaitable[Store]]
# Starts watching job-1 in a store's process: `await watch_job(store, *events)`.
WatchJob = Callable[..., Awaitable[str]]

# The lease of the stores the tests open (the bot's default), unless a test asks for another.
LEASE_S = 30.0


@functools.cache
def _server() -> str | None:
    return server_url(os.environ.get("XGENLENS_TEST_DATABASE_URL"))


def _needs_postgres(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("database") if callspec is not None else None
    return "open_shared_store" in names or param == "postgresql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a server the PostgreSQL runs are left out, and one line says so."""
    here = Path(__file__).parent
    skipped = [i for i in items if here in Path(str(i.path)).parents and _needs_postgres(i)]
    if not skipped or _server() is not None:
        return
    items[:] = [i for i in items if i not in skipped]
    config.hook.pytest_deselected(items=skipped)
    config.stash[_SKIPPED] = len(skipped)


_SKIPPED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if config.stash.get(_SKIPPED, 0):
        terminalreporter.write_line(f"{SKIP_POSTGRES}: {config.stash[_SKIPPED]} tests")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str | None]:
    """The URL of this run's own PostgreSQL database; None when no server answers."""
    url = _server()
    if url is None:
        yield None
        return
    with temporary_database(url) as database:
        yield database


@dataclass(frozen=True)
class Database:
    """One test's database: a SQLite file, or a PostgreSQL schema of the test's own."""

    kind: str  # "sqlite" | "postgresql"
    address: str  # the file's path, or the URL of connections to the schema

    def execute(self, *statements: str) -> None:
        """Runs statements on it directly, as an older bot would have (no store open)."""
        if self.kind == "sqlite":
            with contextlib.closing(sqlite3.connect(self.address, isolation_level=None)) as db:
                for statement in statements:
                    db.execute(statement)
            return
        with psycopg.connect(self.address, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)


async def _database(kind: str, tmp_path: Path, postgres_database: str | None) -> Database:
    if kind == "sqlite":
        path = tmp_path / "state" / "bot.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        return Database(kind, str(path))
    if postgres_database is None:
        pytest.skip(SKIP_POSTGRES)
    return Database(kind, await empty_schema(postgres_database, f"t_{uuid.uuid4().hex[:12]}"))


@contextlib.asynccontextmanager
async def _opener(database: Database, clock: FakeClock) -> AsyncIterator[OpenStore]:
    opened: list[Store] = []

    async def make(**kwargs: Any) -> Store:
        kwargs = {"clock": clock, "lease_s": LEASE_S, **kwargs}
        if database.kind == "postgresql":
            from bot.store.postgres import PostgresStore

            store: Store = PostgresStore(database.address, **kwargs)
            await store.open()
        else:
            store = SQLiteStore(database.address, **kwargs)
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for store in opened:
            await store.disconnect()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: str | None
) -> Database:
    """The test's fresh database, in each of the two kinds."""
    return await _database(request.param, tmp_path, postgres_database)


@pytest.fixture
async def open_store(database: Database, clock: FakeClock) -> AsyncIterator[OpenStore]:
    """Opens stores on one fresh database: each call is another process (or a restart)."""
    async with _opener(database, clock) as make:
        yield make


@pytest.fixture
async def open_shared_store(
    tmp_path: Path, postgres_database: str | None, clock: FakeClock
) -> AsyncIterator[OpenStore]:
    """Several live processes on one database: PostgreSQL's case (a SQLite file belongs to
    one process, and opening it again is that process's restart)."""
    database = await _database("postgresql", tmp_path, postgres_database)
    async with _opener(database, clock) as make:
        yield make


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()


@pytest.fixture
def watch_job(world: dict, nebius_jobs: FakeJobs) -> WatchJob:
    """Job-1 at Nebius with the events given, its card posted in C1 and its watch added in
    the store's process; the card's ts."""

    async def watch(store: Store, *events: str) -> str:
        nebius_jobs.add("job-1")
        ts = await start_watch(world, store, "job-1")
        nebius_jobs.emit("job-1", *events)
        return ts

    return watch


class TwoProcesses(NamedTuple):
    """Two processes on one PostgreSQL database; the first watches job-1 (its card: `ts`)."""

    first: Store
    second: Store
    ts: str


@pytest.fixture
async def two_processes(open_shared_store: OpenStore, watch_job: WatchJob) -> TwoProcesses:
    """Job-1 with its first two events at Nebius ("started", "step 1"), not yet polled."""
    first = await open_shared_store()
    second = await open_shared_store()
    return TwoProcesses(first, second, await watch_job(first, "started", "step 1"))


async def claimed(store: Store) -> list[Watch]:
    """What `store`'s process takes at a tick of its watcher: its share of the free watches."""
    taken, _ = await store.rebalance_watches()
    return taken


def lapse(clock: FakeClock, store: Store) -> None:
    """Moves the clock past the lease of a process that renews it no more, and past the grace
    after it: `store`'s process (a live one) may take that process's watches and starts."""
    clock.advance(LEASE_S + store.takeover_grace_s + 1)
