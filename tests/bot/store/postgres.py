"""A PostgreSQL server for tests: found (or not), and a database of the run's own on it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url(url: str | None = None) -> str | None:
    """The server's URL when it answers (within 2 s), else None."""
    url = url or DEFAULT_SERVER
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return None
    return url


@contextlib.contextmanager
def temporary_database(server: str) -> Iterator[str]:
    """Creates a database with a random name, yields its URL, and drops it at the end."""
    name = f"xgenlens_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield psycopg.conninfo.make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def empty_schema(database: str, schema: str) -> str:
    """A new empty schema in the database; the URL of connections that use it."""
    async with await psycopg.AsyncConnection.connect(database, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return psycopg.conninfo.make_conninfo(database, options=f"-c search_path={schema}")
