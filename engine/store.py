"""The engine's SQLite database (WAL): files, jobs, events, checkpoints and deployments.

Each row keeps its API object as a JSON document, with the few columns queries need
beside it. One connection behind a lock: the event loop and the file-processing
threads share it, and every statement is short.
"""

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    purpose TEXT NOT NULL,
    path TEXT NOT NULL,
    owned INTEGER NOT NULL,
    report TEXT,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL,
    internal TEXT NOT NULL DEFAULT '{}',
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    job_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    job_id TEXT NOT NULL,
    path TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_job ON checkpoints(job_id, seq);
CREATE TABLE IF NOT EXISTS deployments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT UNIQUE NOT NULL,
    status TEXT NOT NULL,
    internal TEXT NOT NULL DEFAULT '{}',
    doc TEXT NOT NULL
);
"""


class StoredFile:
    def __init__(self, doc: dict[str, Any], path: Path, owned: bool, report: Any) -> None:
        self.doc = doc
        self.path = path
        self.owned = owned
        self.report = report


class Store:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # Files

    def add_file(self, doc: dict[str, Any], path: Path, *, owned: bool) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO files (id, purpose, path, owned, doc) VALUES (?, ?, ?, ?, ?)",
                (doc["id"], doc["purpose"], str(path), int(owned), json.dumps(doc)),
            )

    def get_file(self, file_id: str) -> StoredFile | None:
        row = self._one("SELECT doc, path, owned, report FROM files WHERE id = ?", (file_id,))
        if row is None:
            return None
        report = json.loads(row[3]) if row[3] else None
        return StoredFile(json.loads(row[0]), Path(row[1]), bool(row[2]), report)

    def update_file(
        self, file_id: str, changes: dict[str, Any], report: dict[str, Any] | None = None
    ) -> None:
        with self._tx() as db:
            row = db.execute("SELECT doc FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None:
                return
            doc = json.loads(row[0]) | changes
            db.execute(
                "UPDATE files SET doc = ?, report = COALESCE(?, report) WHERE id = ?",
                (json.dumps(doc), json.dumps(report) if report is not None else None, file_id),
            )

    def list_files(self, purpose: str | None = None) -> list[dict[str, Any]]:
        if purpose:
            rows = self._all("SELECT doc FROM files WHERE purpose = ? ORDER BY seq", (purpose,))
        else:
            rows = self._all("SELECT doc FROM files ORDER BY seq", ())
        return [json.loads(r[0]) for r in rows]

    def files_with_status(self, status: str) -> list[str]:
        rows = self._all("SELECT id, doc FROM files ORDER BY seq", ())
        return [r[0] for r in rows if json.loads(r[1]).get("status") == status]

    def delete_file(self, file_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    # Jobs

    def add_job(self, doc: dict[str, Any], internal: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO jobs (id, status, internal, doc) VALUES (?, ?, ?, ?)",
                (doc["id"], doc["status"], json.dumps(internal), json.dumps(doc)),
            )

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT doc FROM jobs WHERE id = ?", (job_id,))
        return json.loads(row[0]) if row else None

    def job_internal(self, job_id: str) -> dict[str, Any]:
        row = self._one("SELECT internal FROM jobs WHERE id = ?", (job_id,))
        return json.loads(row[0]) if row else {}

    def update_job(
        self,
        job_id: str,
        changes: dict[str, Any],
        internal: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self._tx() as db:
            row = db.execute("SELECT doc, internal FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            doc = json.loads(row[0]) | changes
            inner = json.loads(row[1]) | (internal or {})
            db.execute(
                "UPDATE jobs SET doc = ?, status = ?, internal = ? WHERE id = ?",
                (json.dumps(doc), doc["status"], json.dumps(inner), job_id),
            )
            return doc

    def jobs_with_status(self, *statuses: str) -> list[dict[str, Any]]:
        marks = ", ".join("?" for _ in statuses)
        rows = self._all(f"SELECT doc FROM jobs WHERE status IN ({marks}) ORDER BY seq", statuses)
        return [json.loads(r[0]) for r in rows]

    def list_jobs(self, after: str | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Newest first; `after` is the id of the last job of the previous page."""
        return self._page("jobs", "1 = 1", (), after, limit)

    def _page(
        self, table: str, where: str, args: tuple[Any, ...], after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        if after:
            row = self._one(f"SELECT seq FROM {table} WHERE id = ?", (after,))
            cursor = row[0] if row else -1
            where += " AND seq < ?"
            args = (*args, cursor)
        rows = self._all(
            f"SELECT doc FROM {table} WHERE {where} ORDER BY seq DESC LIMIT ?", (*args, limit + 1)
        )
        docs = [json.loads(r[0]) for r in rows]
        return docs[:limit], len(docs) > limit

    # Events

    def add_event(self, job_id: str, doc: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (id, job_id, doc) VALUES (?, ?, ?)",
                (doc["id"], job_id, json.dumps(doc)),
            )

    def list_events(
        self, job_id: str, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        return self._page("events", "job_id = ?", (job_id,), after, limit)

    # Checkpoints

    def add_checkpoint(self, doc: dict[str, Any], path: Path) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO checkpoints (id, job_id, path, doc) VALUES (?, ?, ?, ?)",
                (doc["id"], doc["fine_tuning_job_id"], str(path), json.dumps(doc)),
            )

    def list_checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._all("SELECT doc FROM checkpoints WHERE job_id = ? ORDER BY seq", (job_id,))
        return [json.loads(r[0]) for r in rows]

    def last_checkpoint_path(self, job_id: str) -> Path | None:
        row = self._one(
            "SELECT path FROM checkpoints WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job_id,)
        )
        return Path(row[0]) if row else None

    # Deployments (`/v0/models`), keyed by their full name

    def add_deployment(self, doc: dict[str, Any], internal: dict[str, Any]) -> bool:
        """False when a deployment of that name exists already (nothing is written)."""
        with self._tx() as db:
            taken = db.execute("SELECT 1 FROM deployments WHERE name = ?", (doc["name"],))
            if taken.fetchone() is not None:
                return False
            db.execute(
                "INSERT INTO deployments (name, status, internal, doc) VALUES (?, ?, ?, ?)",
                (doc["name"], doc["status"], json.dumps(internal), json.dumps(doc)),
            )
            return True

    def get_deployment(self, name: str) -> dict[str, Any] | None:
        row = self._one("SELECT doc FROM deployments WHERE name = ?", (name,))
        return json.loads(row[0]) if row else None

    def deployment_internal(self, name: str) -> dict[str, Any]:
        row = self._one("SELECT internal FROM deployments WHERE name = ?", (name,))
        return json.loads(row[0]) if row else {}

    def list_deployments(self, *statuses: str) -> list[dict[str, Any]]:
        """Oldest first; only those with one of `statuses` when any are given."""
        if statuses:
            marks = ", ".join("?" for _ in statuses)
            rows = self._all(
                f"SELECT doc FROM deployments WHERE status IN ({marks}) ORDER BY seq", statuses
            )
        else:
            rows = self._all("SELECT doc FROM deployments ORDER BY seq", ())
        return [json.loads(r[0]) for r in rows]

    def update_deployment(
        self, name: str, changes: dict[str, Any], *, only_if_status: str | None = None
    ) -> dict[str, Any] | None:
        """The updated document; None when it is gone or not in `only_if_status`."""
        with self._tx() as db:
            row = db.execute("SELECT doc FROM deployments WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            doc = json.loads(row[0])
            if only_if_status is not None and doc.get("status") != only_if_status:
                return None
            doc |= changes
            db.execute(
                "UPDATE deployments SET doc = ?, status = ? WHERE name = ?",
                (json.dumps(doc), doc["status"], name),
            )
            return doc

    def delete_deployment(self, name: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM deployments WHERE name = ?", (name,)).rowcount > 0
