"""Support for the watcher's tests (tests/bot/core, tests/bot/store): Nebius's view of some jobs,
and a bot's watches as a process (the first, or one started after a crash) opens them. The
fixtures that build them (`nebius_jobs`, `world`) are in tests/bot/conftest.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx
import respx

from bot.blocks.jobs import job_card_message
from bot.core.watcher import Watcher
from bot.store import SQLiteStore, Store
from client import Job
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import FakeSlack

# These tests run one process on the test's fake clock and jump it by minutes; no renewer runs,
# so the lease must outlast every jump (leases and takeovers are tested in tests/bot/store).
ONE_PROCESS_LEASE_S = 365 * 24 * 3600.0


@dataclass
class FakeJobs:
    """Nebius's view of some jobs, served through respx."""

    jobs: dict[str, dict] = field(default_factory=dict)
    events: dict[str, list[dict]] = field(default_factory=dict)  # oldest first
    checkpoints: dict[str, list[dict]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    def add(self, job_id: str, status: str = "running") -> None:
        self.jobs[job_id] = {"id": job_id, "model": "m", "status": status, "created_at": 1}
        self.events[job_id] = []

    def emit(self, job_id: str, *messages: str) -> None:
        for message in messages:
            n = len(self.events[job_id]) + 1
            self.events[job_id].append(
                {"id": f"{job_id}-ev{n}", "created_at": 1700000000 + n, "message": message}
            )

    def route(self, router: respx.Router) -> None:
        def job(request: httpx.Request, job_id: str) -> httpx.Response:
            if job_id in self.failing:
                return httpx.Response(500, json={"detail": "boom"})
            if job_id not in self.jobs:
                return httpx.Response(404, json={"error": {"message": "no such job"}})
            return httpx.Response(200, json=self.jobs[job_id])

        def events(request: httpx.Request, job_id: str) -> httpx.Response:
            newest_first = list(reversed(self.events.get(job_id, [])))
            return httpx.Response(200, json={"data": newest_first, "has_more": False})

        def checkpoints(request: httpx.Request, job_id: str) -> httpx.Response:
            return httpx.Response(200, json={"data": self.checkpoints.get(job_id, [])})

        router.get(path__regex=r"fine_tuning/jobs/(?P<job_id>[\w-]+)$").mock(side_effect=job)
        router.get(path__regex=r"fine_tuning/jobs/(?P<job_id>[\w-]+)/events$").mock(
            side_effect=events
        )
        router.get(path__regex=r"fine_tuning/jobs/(?P<job_id>[\w-]+)/checkpoints$").mock(
            side_effect=checkpoints
        )


async def start_watch(world: dict, store: Store, job_id: str, channel: str = "C1") -> str:
    card = await world["chat"].post(
        channel, job_card_message(Job.model_validate({"id": job_id, "status": "queued"}))
    )
    await store.add_watch(job_id, channel, card.ts, "U1")
    return card.ts


def watcher(world: dict, store: Store, clock: FakeClock) -> Watcher:
    return Watcher(store, world["chat"], world["nebius"], clock=clock)


def open_store(world: dict) -> Store:
    """The bot's database, as a process (the first, or one started after a crash) opens it."""
    return SQLiteStore(world["path"], clock=world["clock"], lease_s=ONE_PROCESS_LEASE_S)


async def restart(world: dict, store: Store) -> Store:
    """The process stops; a new one opens the same database."""
    await store.close()
    return open_store(world)


async def followed(
    world: dict,
    store: Store,
    nebius_jobs: FakeJobs,
    *said: str,
    job_id: str = "job-1",
    channel: str = "C1",
) -> str:
    """`job_id` runs on Nebius and has said `said` so far; the bot follows it in a thread of
    `channel`, whose ts this is."""
    nebius_jobs.add(job_id)
    ts = await start_watch(world, store, job_id, channel)
    nebius_jobs.emit(job_id, *said)
    return ts


def event_replies(fake: FakeSlack, thread_ts: str) -> list[str]:
    return [
        m.text + json.dumps(m.blocks)
        for m in fake.thread("C1", thread_ts)
        if (m.metadata or {}).get("event_payload", {}).get("kind") == "events"
    ]
