"""The store's schema, version by version, written once for both databases.

Each statement names its column types by what they hold (`{time}`, `{big_integer}`,
`{identity}`); a `Dialect` spells them for SQLite or PostgreSQL. Entry i of `migrations`
brings a database to version i + 1: a version, once released, means the same statements for
good (a database at that version may exist), so a change is a new version at the end.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from bot.store.base import Conn, Step

Migrations = tuple[tuple[Step, ...], ...]


async def _upload_columns(conn: Conn) -> None:
    """A database made before the schema had a version may lack the columns added later."""
    have = {row["name"] for row in await conn.fetch("PRAGMA table_info(uploads)")}
    for column in ("report_ts", "validation_report"):
        if column not in have:
            await conn.run(f"ALTER TABLE uploads ADD COLUMN {column} TEXT")


@dataclass(frozen=True)
class Dialect:
    """What the two databases spell differently in the schema."""

    time: str  # wall-clock seconds, fractional
    big_integer: str  # a file's size in bytes
    identity: str  # a primary key numbered by the database
    # Version 1's last steps, for what a database from before the schema had versions (only
    # SQLite files were made so) may lack.
    unversioned: tuple[Step, ...] = ()


SQLITE = Dialect(
    time="REAL",
    big_integer="INTEGER",
    identity="INTEGER PRIMARY KEY AUTOINCREMENT",
    unversioned=(_upload_columns,),
)
POSTGRESQL = Dialect(
    time="DOUBLE PRECISION",
    big_integer="BIGINT",
    identity="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
)

# Version 1. IF NOT EXISTS: a SQLite file from before the schema had versions may hold some of
# these tables already (a PostgreSQL database never does; there it changes nothing).
_V1 = (
    """CREATE TABLE IF NOT EXISTS handled_events (
        event_id TEXT PRIMARY KEY,
        handled_at {time} NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS nebius_files (
        sha256 TEXT PRIMARY KEY,
        file_id TEXT NOT NULL,
        filename TEXT,
        bytes {big_integer},
        created_at {time} NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS idempotency (
        key TEXT PRIMARY KEY,
        job_id TEXT,
        created_at {time} NOT NULL,
        updated_at {time} NOT NULL
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
        created_at {time} NOT NULL,
        updated_at {time} NOT NULL
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
        create_sent_at {time},
        phase TEXT NOT NULL,
        created_at {time} NOT NULL,
        updated_at {time} NOT NULL
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
        created_at {time} NOT NULL,
        updated_at {time} NOT NULL
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
        created_at {time} NOT NULL,
        report_ts TEXT,
        validation_report TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS uploads_by_channel ON uploads(channel, created_at)",
    "CREATE INDEX IF NOT EXISTS uploads_by_sha ON uploads(sha256)",
    # Posts to job threads: the intent is written before posting and the outcome after, so a
    # restart reads a thread back from Slack only for a post that may have been in flight.
    """CREATE TABLE IF NOT EXISTS outbox (
        id {identity},
        job_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        thread_ts TEXT NOT NULL,
        first_event_id TEXT,
        last_event_id TEXT,
        state TEXT NOT NULL,
        ts TEXT,
        created_at {time} NOT NULL,
        updated_at {time} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_by_job ON outbox(job_id, state)",
    "CREATE INDEX IF NOT EXISTS outbox_by_time ON outbox(state, updated_at)",
)

# Version 2: leases. A watch is held by its owner's session while that session is renewed.
_V2 = (
    """CREATE TABLE sessions (
        session TEXT PRIMARY KEY,
        started_at {time} NOT NULL,
        lease_until {time} NOT NULL
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
        created_at {time} NOT NULL
    )""",
    "CREATE INDEX job_plans_by_retry ON job_plans(retry_of)",
    """CREATE TABLE channel_settings (
        channel TEXT PRIMARY KEY,
        notify TEXT NOT NULL,
        updated_by TEXT,
        updated_at {time} NOT NULL
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
        created_at {time} NOT NULL,
        updated_at {time} NOT NULL,
        PRIMARY KEY (job_id, checkpoint_id)
    )""",
    "CREATE INDEX deployments_by_name ON deployments(name)",
    "CREATE INDEX deployments_by_state ON deployments(state)",
)

# Version 5: a job's card is its thread's parent, so a watch's `card_ts` only ever repeated
# its `thread_ts` (SQLite drops a column from 3.35 on, as the store requires for RETURNING).
_V5 = ("ALTER TABLE watches DROP COLUMN card_ts",)

_VERSIONS = (_V1, _V2, _V3, _V4, _V5)


@functools.cache
def migrations(dialect: Dialect) -> Migrations:
    """The schema in `dialect`: entry i brings a database to version i + 1."""
    types = {"time": dialect.time, "big_integer": dialect.big_integer, "identity": dialect.identity}
    rendered = [tuple(step.format(**types) for step in version) for version in _VERSIONS]
    rendered[0] += dialect.unversioned
    return tuple(rendered)
