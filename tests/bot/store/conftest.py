"""The store's tests run against both databases: SQLite in a temporary file, and PostgreSQL
in a database of the test run's own (created here, dropped at the end) on the server at
127.0.0.1:5432, or at XGENLENS_TEST_DATABASE_URL. Without a server the PostgreSQL runs skip."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.store import SQLiteStore, Store
from tests.bot.store.postgres import server_url, temporary_database

SKIP_POSTGRES = (
    "PostgreSQL tests skipped: no server at 127.0.0.1:5432 "
    "(set XGENLENS_TEST_DATABASE_URL to run them)"
)

# Opens a store on the test's database, as a (re)started process would.
OpenStore = Callable[..., Awaitable[Store]]


@functools.cache
def _server() -> str | None:
    return server_url(os.environ.get("XGENLENS_TEST_DATABASE_URL"))


def _needs_postgres(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get("open_store") if callspec is not None else None
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


@contextlib.asynccontextmanager
async def _opener(
    kind: str, tmp_path: Path, postgres_database: str | None
) -> AsyncIterator[OpenStore]:
    opened: list[Store] = []
    if kind == "postgresql":
        if postgres_database is None:
            pytest.skip(SKIP_POSTGRES)
        from bot.store.postgres import PostgresStore
        from tests.bot.store.postgres import empty_schema

        url = await empty_schema(postgres_database, f"t_{uuid.uuid4().hex[:12]}")

        async def make(**kwargs: Any) -> Store:
            store = PostgresStore(url, **kwargs)
            await store.open()
            opened.append(store)
            return store
    else:
        path = tmp_path / "state" / "bot.sqlite3"

        async def make(**kwargs: Any) -> Store:
            store = SQLiteStore(path, **kwargs)
            opened.append(store)
            return store

    try:
        yield make
    finally:
        for store in opened:
            await store.disconnect()


@pytest.fixture(params=["sqlite", "postgresql"])
async def open_store(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: str | None
) -> AsyncIterator[OpenStore]:
    """Opens stores on one fresh database: each call is another process (or a restart)."""
    async with _opener(request.param, tmp_path, postgres_database) as make:
        yield make


@pytest.fixture
async def open_shared_store(
    tmp_path: Path, postgres_database: str | None
) -> AsyncIterator[OpenStore]:
    """Several live processes on one database: PostgreSQL's case (a SQLite file belongs to
    one process, and opening it again is that process's restart)."""
    async with _opener("postgresql", tmp_path, postgres_database) as make:
        yield make


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()
