"""The store's schema across versions: a database an older bot made opens migrated, with its
data; one a newer bot made is refused; in SQLite and in PostgreSQL alike."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.store import SQLiteStore, StoreError
from bot.store.schema import POSTGRESQL, SQLITE, migrations
from tests.bot.store.conftest import Database, OpenStore

LATEST = 5
PLAN = {"model": "m", "training": "F1", "hyperparameters": {"n_epochs": 2}, "wandb": None}


@pytest.mark.parametrize("version", [2, 4])
async def test_a_database_of_an_older_version_is_migrated_with_its_data(
    database: Database, open_store: OpenStore, version: int
) -> None:
    # The database as the bot of that version left it: its migrations, run by the store then.
    dialect = SQLITE if database.kind == "sqlite" else POSTGRESQL
    older = migrations(dialect)[:version]
    database.execute(
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        *(step for steps in older for step in steps if isinstance(step, str)),
        f"INSERT INTO schema_version(version) VALUES ({version})",
        # Until version 5 a watch kept its card's ts as well (its thread's, always).
        "INSERT INTO watches(job_id, channel, thread_ts, card_ts, user_id, done, created_at, "
        "updated_at) VALUES ('ftjob-1', 'C1', '1.1', '1.1', 'U1', 0, 1, 1)",
    )

    store = await open_store()
    assert store.found_version == version  # type: ignore[attr-defined]
    assert await store.schema_in_database() == store.schema_version == LATEST
    watch = await store.watch("ftjob-1")
    assert watch is not None
    assert (watch.channel, watch.thread_ts, watch.user_id, watch.done) == ("C1", "1.1", "U1", False)
    async with store._conn() as conn:
        (row,) = await conn.fetch("SELECT * FROM watches")
    assert "card_ts" not in row
    await store.add_watch("ftjob-2", "C1", "2.1", "U1")
    assert [w.job_id for w in await store.active_watches()] == ["ftjob-1", "ftjob-2"]
    await store.remember_job("ftjob-1", channel="C1", user_id="U1", plan=PLAN)
    assert (await store.job_plan("ftjob-1")) is not None


async def test_the_schema_has_a_version_and_a_newer_one_is_refused(
    open_store: OpenStore,
) -> None:
    store = await open_store()
    assert await store.schema_in_database() == store.schema_version == LATEST
    async with store._conn() as conn:
        await conn.run("UPDATE schema_version SET version = 99")
    await store.close()
    with pytest.raises(StoreError, match="schema is version 99, newer than this bot's"):
        await open_store()


async def test_a_sqlite_database_from_before_the_report_columns_gains_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "bot.sqlite3"
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE uploads (slack_file_id TEXT PRIMARY KEY, channel TEXT NOT NULL, "
        "thread_ts TEXT, name TEXT NOT NULL, user_id TEXT, sha256 TEXT, valid INTEGER, "
        "format TEXT, report TEXT, state TEXT NOT NULL, created_at REAL NOT NULL)"
    )
    old.execute(
        "INSERT INTO uploads VALUES ('F1', 'C1', '1.0', 'a.jsonl', 'U1', 's1', 1, 'chat', "
        "'{}', 'done', 1.0)"
    )
    old.commit()
    old.close()

    store = SQLiteStore(path)
    assert (await store.upload("F1")).report_ts is None
    await store.upload_reported("F1", "1.5")
    await store.finish_validation_report("F1", {"role": "validation"})
    upload = await store.upload("F1")
    assert upload.report_ts == "1.5" and upload.validation_report == {"role": "validation"}
