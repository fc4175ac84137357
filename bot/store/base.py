"""The store's interface, written once over a small SQL core that both databases share.

`Store` holds every query the bot makes (one dialect: SQLite 3.35+ and PostgreSQL both read
it, with `?` for parameters); `SQLiteStore` and `PostgresStore` give it a connection, a
transaction and the schema in their spelling (bot.store.schema). Several processes may share
one PostgreSQL database: what must happen once is claimed by a single statement (an insert
that only one process wins, or a conditional update), and the watches and job starts of a
process are leased: held while its session is renewed, taken over by the others once it
lapses.

Times are wall-clock seconds, the `time()` of the bot's clock (a fake one in tests): what is
stored must still mean something after a restart, and leases compare the clocks of several
processes (keep them in sync, as NTP does).
"""

from __future__ import annotations

import json
import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from bot.clock import Clock, RealClock
from bot.config import DEFAULT_LEASE_S
from bot.store.records import (
    DEPLOYMENT_REDEPLOYABLE,
    DEPLOYMENT_UNSETTLED,
    PRUNE_EVERY,
    RENEWALS_PER_LEASE,
    RETENTION_S,
    ContentRequest,
    JobPlan,
    LeaseLost,
    OutboxEntry,
    PendingStart,
    Row,
    StoredDeployment,
    Upload,
    Watch,
    content_request_from,
    job_plan_from,
    outbox_entry_from,
    pending_start_from,
    stored_deployment_from,
    upload_from,
    watch_from,
)


class StoreError(Exception):
    """The database cannot be used as it is (unreachable, or made by a newer bot)."""


class Conn(Protocol):
    """One connection, or one transaction on it."""

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Runs a statement; returns how many rows it changed."""
        ...


# A migration step: one SQL statement, or code for what SQL alone cannot say.
Step = str | Callable[[Conn], Awaitable[None]]


class Store(ABC):
    """Everything a restart must not forget, and what several processes must do once."""

    # Appended to a SELECT whose rows a claim takes: other processes skip those rows rather
    # than wait for them (PostgreSQL); SQLite has one writer at a time and needs nothing.
    skip_locked = ""

    def __init__(self, *, clock: Clock | None = None, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.clock = clock or RealClock()
        self.lease_s = lease_s
        # The lease is renewed every third of it (by the watcher's renewer). The same third is
        # the fence's margin (posts stop once the last renewal is older than the lease less
        # it) and the takeover's (others wait that long past the lease before taking over),
        # so a post sent just before the fence has two thirds of a lease to reach Slack
        # before another process reads the thread back.
        self.renew_every_s = lease_s / RENEWALS_PER_LEASE
        self.takeover_grace_s = self.renew_every_s
        # This process's session: it owns the watches and the starts it holds.
        self.session = uuid.uuid4().hex
        # When the lease was last renewed (the time read before the statement went out, as the
        # lease it set counts from then); the epoch moves on each time it was found lapsed.
        self.renewed_at = -math.inf
        self.lease_epoch = 0
        self._claims = 0
        # Closed or disconnected: closing again does nothing.
        self._ended = False

    # ------------------------------------------------------------------ backend

    @abstractmethod
    def _conn(self) -> AbstractAsyncContextManager[Conn]:
        """A connection whose statements commit one by one."""

    @abstractmethod
    def _tx(self) -> AbstractAsyncContextManager[Conn]:
        """A transaction: committed at the end of the block, rolled back on an error."""

    @abstractmethod
    def migrations(self) -> Sequence[Sequence[Step]]:
        """The schema, version by version: entry i brings a database to version i + 1."""

    @abstractmethod
    async def open(self) -> None:
        """Connects, creates or migrates the schema, and begins this process's session."""

    @abstractmethod
    async def disconnect(self) -> None:
        """Disconnects without ending the session, as a process killed would: its watches
        and starts stay its own until its lease lapses. Calling it twice is harmless."""

    async def _not_live(self, column: str) -> tuple[str, list[Any]]:
        """A condition on `column` (a session id): that session has ended, or its lease
        lapsed more than `takeover_grace_s` ago (time for a post it sent to land)."""
        return (
            f"{column} NOT IN (SELECT session FROM sessions WHERE lease_until >= ?)",
            [self.clock.time() - self.takeover_grace_s],
        )

    def _lease_conn(self) -> AbstractAsyncContextManager[Conn]:
        """The connection the lease is renewed on: PostgreSQL keeps one of its own, outside
        the pool, so that a pool busy with polls never holds a renewal back."""
        return self._conn()

    async def _lock_schema(self, conn: Conn) -> None:
        """Keeps two processes starting at once from migrating together (in `_tx`)."""
        return None  # SQLite: BEGIN IMMEDIATE already keeps out every other writer

    @property
    def schema_version(self) -> int:
        return len(self.migrations())

    async def schema_in_database(self) -> int:
        """The schema version the database records."""
        row = await self._one("SELECT version FROM schema_version")
        return int(row["version"]) if row else 0

    async def _migrate(self) -> int:
        """Brings the schema to this bot's version; returns the version found."""
        async with self._tx() as conn:
            await self._lock_schema(conn)
            await conn.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            rows = await conn.fetch("SELECT version FROM schema_version")
            found = int(rows[0]["version"]) if rows else 0
            steps = self.migrations()
            if found > len(steps):
                raise StoreError(
                    f"the database's schema is version {found}, newer than this bot's "
                    f"({len(steps)}): a newer bot uses it; run that version or a newer one"
                )
            for version in range(found, len(steps)):
                for step in steps[version]:
                    await (conn.run(step) if isinstance(step, str) else step(conn))
            if not rows:
                await conn.run("INSERT INTO schema_version(version) VALUES (?)", (len(steps),))
            elif found != len(steps):
                await conn.run("UPDATE schema_version SET version = ?", (len(steps),))
        return found

    async def _begin_session(self) -> None:
        now = self.clock.time()
        await self._run(
            "INSERT INTO sessions(session, started_at, lease_until) VALUES (?, ?, ?)",
            (self.session, now, now + self.lease_s),
        )
        self.renewed_at = now

    async def close(self) -> None:
        """Ends this process's session and hands its watches back at once (a rolling restart
        need not wait for the lease), then disconnects. Closing twice is harmless."""
        if self._ended:
            return
        try:
            async with self._tx() as conn:
                await conn.run(
                    "UPDATE watches SET owner = NULL WHERE owner = ? AND done = 0",
                    (self.session,),
                )
                await conn.run("DELETE FROM sessions WHERE session = ?", (self.session,))
        finally:
            await self.disconnect()

    def _updates(self, **columns: Any) -> tuple[str, list[Any]]:
        """An UPDATE's `updated_at = ?, column = ?, ...` for the columns given a value (None
        leaves a column as it is), and its arguments: the time now, then those values."""
        given = {column: value for column, value in columns.items() if value is not None}
        sets = ", ".join(f"{column} = ?" for column in ("updated_at", *given))
        return sets, [self.clock.time(), *given.values()]

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        async with self._conn() as conn:
            return await conn.fetch(sql, args)

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        rows = await self._fetch(sql, args)
        return rows[0] if rows else None

    async def _run(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self._conn() as conn:
            return await conn.run(sql, args)

    # ------------------------------------------------------------------ the session's lease

    async def renew_session(self) -> bool:
        """Renews this process's lease. False when it had lapsed before (a stall longer than
        the lease): other processes may have taken some of its watches meanwhile, so the
        caller reads back which it still holds, and posts recorded before are not sent (the
        epoch moves on). The session goes on either way."""
        now = self.clock.time()
        async with self._lease_conn() as conn:
            renewed = await conn.run(
                "UPDATE sessions SET lease_until = ? WHERE session = ? AND lease_until >= ?",
                (now + self.lease_s, self.session, now),
            )
            if not renewed:
                # Begun afresh (pruning may have removed the row of a long-lapsed session).
                await conn.run(
                    "INSERT INTO sessions(session, started_at, lease_until) VALUES (?, ?, ?) "
                    "ON CONFLICT(session) DO UPDATE SET started_at = excluded.started_at, "
                    "lease_until = excluded.lease_until",
                    (self.session, now, now + self.lease_s),
                )
                self.lease_epoch += 1
        self.renewed_at = now
        return bool(renewed)

    def lease_fresh(self) -> bool:
        """Whether this process may post in its watches' threads now: its last renewal is
        younger than the lease less one renewal interval. Checked right before each post
        (the fence): a process whose renewals stall stops posting a renewal interval before
        its lease ends, and others take over only a grace after it ends (`_not_live`)."""
        return self.clock.time() - self.renewed_at < self.lease_s - self.renew_every_s

    async def live_sessions(self) -> int:
        """How many processes hold a lease now (this one included)."""
        row = await self._one(
            "SELECT COUNT(*) AS n FROM sessions WHERE lease_until >= ?", (self.clock.time(),)
        )
        return int(row["n"]) if row else 0

    # ------------------------------------------------------------------ Slack event ids

    async def claim_event(self, event_id: str) -> bool:
        """True the first time an event id is seen by any process, False for every
        redelivery (Slack redelivers an event it thinks was not acknowledged, maybe to
        another connection, so another process)."""
        claimed = await self._run(
            "INSERT INTO handled_events(event_id, handled_at) VALUES (?, ?) "
            "ON CONFLICT(event_id) DO NOTHING",
            (event_id, self.clock.time()),
        )
        await self._claimed()
        return claimed == 1

    async def _claimed(self) -> None:
        self._claims += 1
        if self._claims % PRUNE_EVERY == 0:
            await self.prune()

    async def prune(self, retention_s: float = RETENTION_S) -> int:
        """Forgets handled event ids, request keys and content fingerprints older than
        `retention_s` (long past Slack's retries); returns how many rows went."""
        cutoff = self.clock.time() - retention_s
        removed = 0
        async with self._conn() as conn:
            for sql in (
                "DELETE FROM handled_events WHERE handled_at < ?",
                "DELETE FROM idempotency WHERE updated_at < ?",
                "DELETE FROM content_requests WHERE updated_at < ?",
                "DELETE FROM starts WHERE phase = 'interrupted' AND updated_at < ?",
                "DELETE FROM outbox WHERE state = 'done' AND updated_at < ?",
            ):
                removed += await conn.run(sql, (cutoff,))
            # Sessions of processes long gone (their watches are free already).
            await conn.run(
                "DELETE FROM sessions WHERE lease_until < ? AND session != ?",
                (cutoff, self.session),
            )
        return removed

    # ------------------------------------------------------------------ Nebius files

    async def nebius_file(self, sha256: str) -> str | None:
        """The Nebius file id of a content (by hash): each content is uploaded once."""
        row = await self._one("SELECT file_id FROM nebius_files WHERE sha256 = ?", (sha256,))
        return row["file_id"] if row else None

    async def remember_nebius_file(
        self, sha256: str, file_id: str, filename: str | None, size: int | None
    ) -> str:
        """Records an upload's file id; returns the file id to use for this content: the
        first one recorded, when another process uploaded the same content meanwhile."""
        rows = await self._fetch(
            "INSERT INTO nebius_files(sha256, file_id, filename, bytes, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(sha256) DO NOTHING RETURNING file_id",
            (sha256, file_id, filename, size, self.clock.time()),
        )
        if rows:
            return str(rows[0]["file_id"])
        return await self.nebius_file(sha256) or file_id

    async def forget_nebius_file(self, sha256: str) -> None:
        await self._run("DELETE FROM nebius_files WHERE sha256 = ?", (sha256,))

    # ------------------------------------------------------------------ request keys

    async def claim_request(self, key: str) -> bool:
        """True for the first claim of a key by any process; False when it was claimed
        before: one job per request, however often it is delivered or clicked."""
        now = self.clock.time()
        claimed = await self._run(
            "INSERT INTO idempotency(key, created_at, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO NOTHING",
            (key, now, now),
        )
        await self._claimed()
        return claimed == 1

    async def request_job(self, key: str) -> str | None:
        row = await self._one("SELECT job_id FROM idempotency WHERE key = ?", (key,))
        return row["job_id"] if row else None

    async def finish_request(self, key: str, job_id: str) -> None:
        await self._run(
            "UPDATE idempotency SET job_id = ?, updated_at = ? WHERE key = ?",
            (job_id, self.clock.time(), key),
        )

    async def release_request(self, key: str) -> None:
        """A request that failed before a job existed may be tried again."""
        await self._run("DELETE FROM idempotency WHERE key = ? AND job_id IS NULL", (key,))

    # ------------------------------------------------------------------ content fingerprints

    async def claim_content(
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
        being started). One statement, so two processes cannot both go ahead."""
        now = self.clock.time()
        won = await self._fetch(
            "INSERT INTO content_requests(fingerprint, request_key, user_id, channel, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(fingerprint) DO UPDATE SET request_key = excluded.request_key, "
            "user_id = excluded.user_id, channel = excluded.channel, thread_ts = NULL, "
            "job_id = NULL, created_at = excluded.created_at, "
            "updated_at = excluded.updated_at "
            "WHERE ? = 0 AND content_requests.updated_at <= ? RETURNING request_key",
            (fingerprint, key, user_id, channel, now, now, int(busy), now - window_s),
        )
        if won:
            return None
        return await self.content_request(fingerprint)

    async def content_request(self, fingerprint: str) -> ContentRequest | None:
        row = await self._one(
            "SELECT * FROM content_requests WHERE fingerprint = ?", (fingerprint,)
        )
        return content_request_from(row) if row else None

    async def content_thread(
        self, fingerprint: str, key: str, channel: str, thread_ts: str
    ) -> None:
        """Where the request's thread is, so a duplicate can be pointed at it."""
        await self._run(
            "UPDATE content_requests SET channel = ?, thread_ts = ? "
            "WHERE fingerprint = ? AND request_key = ?",
            (channel, thread_ts, fingerprint, key),
        )

    async def finish_content(self, fingerprint: str, key: str, job_id: str) -> None:
        await self._run(
            "UPDATE content_requests SET job_id = ?, updated_at = ? "
            "WHERE fingerprint = ? AND request_key = ?",
            (job_id, self.clock.time(), fingerprint, key),
        )

    async def release_content(self, fingerprint: str, key: str) -> None:
        """A request that failed before its job existed: the same content may be tried again."""
        await self._run(
            "DELETE FROM content_requests WHERE fingerprint = ? AND request_key = ? "
            "AND job_id IS NULL",
            (fingerprint, key),
        )

    # ------------------------------------------------------------------ job starts in flight

    async def begin_start(
        self,
        key: str,
        fingerprint: str,
        *,
        channel: str,
        user_id: str,
        plan: dict[str, Any],
    ) -> None:
        now = self.clock.time()
        await self._run(
            "INSERT INTO starts(request_key, fingerprint, session, channel, user_id, plan, "
            "phase, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'preparing', ?, ?) "
            "ON CONFLICT(request_key) DO UPDATE SET fingerprint = excluded.fingerprint, "
            "session = excluded.session, channel = excluded.channel, "
            "user_id = excluded.user_id, plan = excluded.plan, message_ts = NULL, "
            "step_ts = NULL, request = NULL, create_sent_at = NULL, phase = 'preparing', "
            "created_at = excluded.created_at, updated_at = excluded.updated_at",
            (key, fingerprint, self.session, channel, user_id, json.dumps(plan), now, now),
        )

    async def start_messages(self, key: str, message_ts: str, step_ts: str | None) -> None:
        await self._run(
            "UPDATE starts SET message_ts = ?, step_ts = ?, updated_at = ? WHERE request_key = ?",
            (message_ts, step_ts, self.clock.time(), key),
        )

    async def start_creating(self, key: str, request: dict[str, Any]) -> None:
        """Just before the create request goes out: from here a job may exist."""
        now = self.clock.time()
        await self._run(
            "UPDATE starts SET request = ?, create_sent_at = ?, phase = 'creating', "
            "updated_at = ? WHERE request_key = ?",
            (json.dumps(request), now, now, key),
        )

    async def start_interrupted(self, key: str) -> None:
        await self._run(
            "UPDATE starts SET phase = 'interrupted', session = ?, updated_at = ? "
            "WHERE request_key = ?",
            (self.session, self.clock.time(), key),
        )

    async def end_start(self, key: str) -> None:
        await self._run("DELETE FROM starts WHERE request_key = ?", (key,))

    async def take_interrupted_start(self, key: str) -> PendingStart | None:
        """The interrupted start `key`, removed so that it is started again once only (by
        one click, in one process)."""
        rows = await self._fetch(
            "DELETE FROM starts WHERE request_key = ? AND phase = 'interrupted' RETURNING *",
            (key,),
        )
        return pending_start_from(rows[0]) if rows else None

    async def pending_start(self, key: str) -> PendingStart | None:
        row = await self._one("SELECT * FROM starts WHERE request_key = ?", (key,))
        return pending_start_from(row) if row else None

    async def unfinished_starts(self) -> list[PendingStart]:
        """Claims the starts that processes now gone left in flight (a crash, a shutdown;
        their session ended or lapsed), oldest first: this process resolves them, and no
        other process will."""
        gone, args = await self._not_live("session")
        rows = await self._fetch(
            "UPDATE starts SET session = ? WHERE request_key IN (SELECT request_key "
            f"FROM starts WHERE phase IN ('preparing', 'creating') AND {gone}"
            f"{self.skip_locked}) RETURNING *",
            (self.session, *args),
        )
        starts = [pending_start_from(r) for r in rows]
        created = {r["request_key"]: r["created_at"] for r in rows}
        return sorted(starts, key=lambda s: created[s.request_key])

    async def jobs_watched_elsewhere(self, channel: str, thread_ts: str | None) -> set[str]:
        """The jobs that belong to threads other than this one (so to other requests)."""
        rows = await self._fetch(
            "SELECT job_id FROM watches WHERE NOT (channel = ? AND thread_ts "
            "IS NOT DISTINCT FROM ?)",
            (channel, thread_ts),
        )
        return {row["job_id"] for row in rows}

    # ------------------------------------------------------------------ watches

    async def add_watch(
        self, job_id: str, channel: str, thread_ts: str, user_id: str | None
    ) -> None:
        """One watch per job thread (whose parent is the job's card), held by this process
        from the start."""
        now = self.clock.time()
        await self._run(
            "INSERT INTO watches(job_id, channel, thread_ts, user_id, owner, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(job_id) DO UPDATE SET channel = excluded.channel, "
            "thread_ts = excluded.thread_ts, user_id = excluded.user_id, "
            "owner = excluded.owner, done = 0, updated_at = excluded.updated_at",
            (job_id, channel, thread_ts, user_id, self.session, now, now),
        )

    async def watch(self, job_id: str) -> Watch | None:
        row = await self._one("SELECT * FROM watches WHERE job_id = ?", (job_id,))
        return watch_from(row) if row else None

    async def active_watches(self) -> list[Watch]:
        """Every watch not done, whichever process holds it."""
        rows = await self._fetch("SELECT * FROM watches WHERE done = 0 ORDER BY created_at")
        return [watch_from(r) for r in rows]

    async def user_watches(self, user_id: str, *, limit: int) -> list[Watch]:
        """The watches of the jobs `user_id` started (or asked to watch), newest first (the
        App Home's list), done or not."""
        rows = await self._fetch(
            "SELECT * FROM watches WHERE user_id = ? ORDER BY created_at DESC LIMIT ?",
            (user_id, limit),
        )
        return [watch_from(r) for r in rows]

    async def held_watches(self) -> list[Watch]:
        """The watches not done that this process holds."""
        rows = await self._fetch(
            "SELECT * FROM watches WHERE done = 0 AND owner = ? ORDER BY created_at",
            (self.session,),
        )
        return [watch_from(r) for r in rows]

    async def _claim_watches(self, limit: int) -> list[Watch]:
        """Takes up to `limit` watches that no live process holds (new ones, or those of a
        process whose lease lapsed), oldest first; returns them."""
        gone, args = await self._not_live("owner")
        rows = await self._fetch(
            "UPDATE watches SET owner = ? WHERE job_id IN (SELECT job_id FROM watches "
            f"WHERE done = 0 AND (owner IS NULL OR {gone}) ORDER BY created_at "
            f"LIMIT ?{self.skip_locked}) RETURNING *",
            (self.session, *args, limit),
        )
        return sorted((watch_from(r) for r in rows), key=lambda w: w.job_id)

    async def rebalance_watches(self, busy: Collection[str] = ()) -> tuple[list[Watch], list[str]]:
        """Brings this process to its fair share of the active watches: below it, takes those
        no live process holds; above it (another process started since), hands the excess
        back for the others to take at their next tick. Returns (taken, handed back)."""
        share = await self._fair_share()
        if share > 0:
            return await self._claim_watches(share), []
        if share < 0:
            return [], await self._hand_back_watches(-share, busy)
        return [], []

    async def _hand_back_watches(self, count: int, busy: Collection[str]) -> list[str]:
        """Frees up to `count` of this process's watches, newest first. Never one in `busy`
        (being polled now) nor one with a post pending in the outbox: those stay until they
        are settled, so a handed-back watch is never read back by its next holder."""
        skip = list(busy)
        not_busy = f"AND job_id NOT IN ({', '.join('?' * len(skip))}) " if skip else ""
        rows = await self._fetch(
            "UPDATE watches SET owner = NULL WHERE owner = ? AND job_id IN (SELECT job_id "
            f"FROM watches WHERE done = 0 AND owner = ? {not_busy}AND job_id NOT IN "
            "(SELECT job_id FROM outbox WHERE state = 'pending') "
            f"ORDER BY created_at DESC, job_id DESC LIMIT ?{self.skip_locked}) RETURNING job_id",
            (self.session, self.session, *skip, count),
        )
        return sorted(str(r["job_id"]) for r in rows)

    async def _fair_share(self) -> int:
        row = await self._one(
            "SELECT COUNT(*) AS active, "
            "COALESCE(SUM(CASE WHEN owner = ? THEN 1 ELSE 0 END), 0) AS held "
            "FROM watches WHERE done = 0",
            (self.session,),
        )
        if row is None or not row["active"]:
            return 0
        live = max(1, await self.live_sessions())
        return math.ceil(int(row["active"]) / live) - int(row["held"])

    async def update_watch(
        self,
        job_id: str,
        *,
        last_event_id: str | None = None,
        status: str | None = None,
        done: bool | None = None,
    ) -> None:
        """Sets the fields given (None leaves a field as it is)."""
        sets, args = self._updates(
            last_event_id=last_event_id, status=status, done=None if done is None else int(done)
        )
        await self._run(f"UPDATE watches SET {sets} WHERE job_id = ?", (*args, job_id))

    # ------------------------------------------------------------------ the outbox

    async def outbox_intent(
        self,
        job_id: str,
        kind: str,
        channel: str,
        thread_ts: str,
        *,
        first_event_id: str | None = None,
        last_event_id: str | None = None,
    ) -> OutboxEntry:
        """Records a post about to be made ("pending"). Only the process holding the job's
        watch may: LeaseLost when another has taken it over (then that one posts)."""
        now = self.clock.time()
        rows = await self._fetch(
            "INSERT INTO outbox(job_id, kind, channel, thread_ts, first_event_id, "
            "last_event_id, state, created_at, updated_at) "
            "SELECT ?, ?, ?, ?, ?, ?, 'pending', ?, ? WHERE EXISTS "
            "(SELECT 1 FROM watches WHERE job_id = ? AND owner = ?) RETURNING *",
            (
                job_id,
                kind,
                channel,
                thread_ts,
                first_event_id,
                last_event_id,
                now,
                now,
                job_id,
                self.session,
            ),
        )
        if not rows:
            raise LeaseLost(job_id)
        return outbox_entry_from(rows[0])

    async def outbox_done(self, entry: OutboxEntry, ts: str | None) -> None:
        """The post reached the thread: marks it done and, in the same transaction, moves
        the watch on (its last event posted, or done after the summary)."""
        now = self.clock.time()
        async with self._tx() as conn:
            await conn.run(
                "UPDATE outbox SET state = 'done', ts = ?, updated_at = ? WHERE id = ?",
                (ts, now, entry.id),
            )
            # Only the watch's holder moves it on: the answer to a post sent before a takeover
            # may come after the new holder read it back and posted more, and must not set
            # the watch back to it.
            if entry.kind == "summary":
                await conn.run(
                    "UPDATE watches SET done = 1, updated_at = ? WHERE job_id = ? AND owner = ?",
                    (now, entry.job_id, self.session),
                )
            elif entry.last_event_id is not None:
                await conn.run(
                    "UPDATE watches SET last_event_id = ?, updated_at = ? "
                    "WHERE job_id = ? AND owner = ?",
                    (entry.last_event_id, now, entry.job_id, self.session),
                )

    async def outbox_discard(self, entry: OutboxEntry) -> None:
        """The post certainly did not reach the thread: forget it (the next poll posts again
        from the watch's last recorded event)."""
        await self._run("DELETE FROM outbox WHERE id = ? AND state = 'pending'", (entry.id,))

    async def pending_outbox(self, job_id: str | None = None) -> list[OutboxEntry]:
        """Posts that may have been in flight (all jobs, or one), oldest first."""
        if job_id is None:
            rows = await self._fetch("SELECT * FROM outbox WHERE state = 'pending' ORDER BY id")
        else:
            rows = await self._fetch(
                "SELECT * FROM outbox WHERE job_id = ? AND state = 'pending' ORDER BY id",
                (job_id,),
            )
        return [outbox_entry_from(r) for r in rows]

    # ------------------------------------------------------------------ uploads

    async def claim_upload(
        self,
        slack_file_id: str,
        channel: str,
        thread_ts: str | None,
        name: str,
        user_id: str | None,
    ) -> bool:
        """True the first time any process sees a Slack file; the caller then validates it."""
        claimed = await self._run(
            "INSERT INTO uploads(slack_file_id, channel, thread_ts, name, user_id, state, "
            "created_at) VALUES (?, ?, ?, ?, ?, 'validating', ?) "
            "ON CONFLICT(slack_file_id) DO NOTHING",
            (slack_file_id, channel, thread_ts, name, user_id, self.clock.time()),
        )
        return claimed == 1

    async def finish_upload(
        self,
        slack_file_id: str,
        *,
        sha256: str | None,
        valid: bool | None,
        fmt: str | None,
        report: dict[str, Any] | None,
        state: str = "done",
    ) -> None:
        await self._run(
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

    async def upload_reported(self, slack_file_id: str, report_ts: str) -> None:
        await self._run(
            "UPDATE uploads SET report_ts = ? WHERE slack_file_id = ?", (report_ts, slack_file_id)
        )

    async def finish_validation_report(self, slack_file_id: str, report: dict[str, Any]) -> None:
        await self._run(
            "UPDATE uploads SET validation_report = ? WHERE slack_file_id = ?",
            (json.dumps(report), slack_file_id),
        )

    async def upload(self, slack_file_id: str) -> Upload | None:
        row = await self._one("SELECT * FROM uploads WHERE slack_file_id = ?", (slack_file_id,))
        return upload_from(row) if row else None

    async def validated_upload_by_sha(self, sha256: str) -> Upload | None:
        """An earlier upload of the same content whose report can be reused."""
        row = await self._one(
            "SELECT * FROM uploads WHERE sha256 = ? AND state = 'done' AND report IS NOT NULL "
            "ORDER BY created_at LIMIT 1",
            (sha256,),
        )
        return upload_from(row) if row else None

    async def recent_uploads(self, channel: str, limit: int = 20) -> list[Upload]:
        """The channel's recent JSONL uploads, valid ones first, newest first within each."""
        rows = await self._fetch(
            "SELECT * FROM uploads WHERE channel = ? AND state = 'done' "
            "ORDER BY valid DESC NULLS LAST, created_at DESC LIMIT ?",
            (channel, limit),
        )
        return [upload_from(r) for r in rows]

    # ------------------------------------------------------------------ job plans (retries)

    async def remember_job(
        self,
        job_id: str,
        *,
        channel: str,
        user_id: str | None,
        plan: dict[str, Any],
        retry_of: str | None = None,
    ) -> None:
        """What a job was started from, so that it can be retried with the same files and
        settings; the first record of a job stands (a restart that finds the job again
        records nothing new)."""
        await self._run(
            "INSERT INTO job_plans(job_id, channel, user_id, plan, retry_of, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(job_id) DO NOTHING",
            (job_id, channel, user_id, json.dumps(plan), retry_of, self.clock.time()),
        )

    async def job_plan(self, job_id: str) -> JobPlan | None:
        row = await self._one("SELECT * FROM job_plans WHERE job_id = ?", (job_id,))
        return job_plan_from(row) if row else None

    async def retries_of(self, job_id: str) -> list[str]:
        """The jobs started as retries of `job_id`, oldest first."""
        rows = await self._fetch(
            "SELECT job_id FROM job_plans WHERE retry_of = ? ORDER BY created_at, job_id",
            (job_id,),
        )
        return [row["job_id"] for row in rows]

    # ------------------------------------------------------------------ channel settings

    async def notify_mode(self, channel: str) -> str | None:
        """What the channel's job threads receive (`/finetune notify`); None: never set."""
        row = await self._one("SELECT notify FROM channel_settings WHERE channel = ?", (channel,))
        return row["notify"] if row else None

    async def set_notify_mode(self, channel: str, mode: str, user_id: str | None) -> None:
        now = self.clock.time()
        await self._run(
            "INSERT INTO channel_settings(channel, notify, updated_by, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(channel) DO UPDATE SET notify = excluded.notify, "
            "updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            (channel, mode, user_id, now),
        )

    async def outbox_posted(self, job_id: str, kind: str) -> bool:
        """Whether a post of this kind reached the job's thread (the chart at a job's end is
        uploaded once, across restarts)."""
        row = await self._one(
            "SELECT 1 AS found FROM outbox WHERE job_id = ? AND kind = ? AND state = 'done'",
            (job_id, kind),
        )
        return row is not None

    async def upload_of_nebius_file(self, file_id: str) -> Upload | None:
        """The checked upload whose content became Nebius file `file_id` (its report gives a
        job's token count), or None for a file the bot did not upload."""
        row = await self._one(
            "SELECT uploads.* FROM uploads JOIN nebius_files "
            "ON uploads.sha256 = nebius_files.sha256 WHERE nebius_files.file_id = ? "
            "AND uploads.state = 'done' AND uploads.report IS NOT NULL "
            "ORDER BY uploads.created_at LIMIT 1",
            (file_id,),
        )
        return upload_from(row) if row else None

    # ------------------------------------------------------------------ deployments

    async def claim_deployment(
        self,
        job_id: str,
        checkpoint_id: str,
        *,
        channel: str,
        thread_ts: str | None,
        user_id: str | None,
        step: int | None = None,
    ) -> StoredDeployment | None:
        """Claims the deployment of one checkpoint: None when the caller may deploy it (the
        first claim, or again after an error or a delete), else the deployment that stands
        (a double click, a redelivery, another process). One statement: one winner."""
        now = self.clock.time()
        again = ", ".join(f"'{state}'" for state in DEPLOYMENT_REDEPLOYABLE)
        won = await self._fetch(
            "INSERT INTO deployments(job_id, checkpoint_id, step, state, channel, thread_ts, "
            "user_id, session, created_at, updated_at) "
            "VALUES (?, ?, ?, 'deploying', ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(job_id, checkpoint_id) DO UPDATE SET state = 'deploying', "
            "name = NULL, requested_name = NULL, base_model = NULL, reason = NULL, "
            "progress_ts = NULL, step = excluded.step, channel = excluded.channel, "
            "thread_ts = excluded.thread_ts, user_id = excluded.user_id, "
            "session = excluded.session, created_at = excluded.created_at, "
            f"updated_at = excluded.updated_at WHERE deployments.state IN ({again}) "
            "RETURNING job_id",
            (job_id, checkpoint_id, step, channel, thread_ts, user_id, self.session, now, now),
        )
        if won:
            return None
        return await self.deployment(job_id, checkpoint_id)

    async def update_deployment(
        self,
        job_id: str,
        checkpoint_id: str,
        *,
        name: str | None = None,
        requested_name: str | None = None,
        base_model: str | None = None,
        state: str | None = None,
        reason: str | None = None,
        progress_ts: str | None = None,
        system_prompt: str | None = None,
    ) -> None:
        """Sets the fields given (None leaves a field as it is)."""
        sets, args = self._updates(
            name=name,
            requested_name=requested_name,
            base_model=base_model,
            state=state,
            reason=reason,
            progress_ts=progress_ts,
            system_prompt=system_prompt,
        )
        await self._run(
            f"UPDATE deployments SET {sets} WHERE job_id = ? AND checkpoint_id = ?",
            (*args, job_id, checkpoint_id),
        )

    async def deployment(self, job_id: str, checkpoint_id: str) -> StoredDeployment | None:
        row = await self._one(
            "SELECT * FROM deployments WHERE job_id = ? AND checkpoint_id = ?",
            (job_id, checkpoint_id),
        )
        return stored_deployment_from(row) if row else None

    async def deployment_named(self, name: str) -> StoredDeployment | None:
        """The deployment with this full name (the newest, should a name come back)."""
        row = await self._one(
            "SELECT * FROM deployments WHERE name = ? ORDER BY created_at DESC LIMIT 1", (name,)
        )
        return stored_deployment_from(row) if row else None

    async def job_deployments(self, job_id: str) -> list[StoredDeployment]:
        """A job's deployments, newest first."""
        rows = await self._fetch(
            "SELECT * FROM deployments WHERE job_id = ? ORDER BY created_at DESC", (job_id,)
        )
        return [stored_deployment_from(r) for r in rows]

    async def deployments(self, *, include_deleted: bool = False) -> list[StoredDeployment]:
        """Every deployment the bot made, newest first."""
        where = "" if include_deleted else " WHERE state != 'deleted'"
        rows = await self._fetch(f"SELECT * FROM deployments{where} ORDER BY created_at DESC")
        return [stored_deployment_from(r) for r in rows]

    async def unfinished_deployments(self) -> list[StoredDeployment]:
        """Claims the deployments that processes now gone left unsettled (deploying, or
        validating with nobody waiting), oldest first: this process follows them on."""
        gone, args = await self._not_live("session")
        unsettled = ", ".join(f"'{state}'" for state in DEPLOYMENT_UNSETTLED)
        rows = await self._fetch(
            "UPDATE deployments SET session = ? WHERE (job_id, checkpoint_id) IN ("
            f"SELECT job_id, checkpoint_id FROM deployments WHERE state IN ({unsettled}) "
            f"AND {gone}{self.skip_locked}) RETURNING *",
            (self.session, *args),
        )
        found = [stored_deployment_from(r) for r in rows]
        return sorted(found, key=lambda d: d.created_at)


__all__ = ["RETENTION_S", "Conn", "LeaseLost", "Step", "Store", "StoreError"]
