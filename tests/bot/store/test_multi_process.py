"""Three bot processes (real OS processes, HTTP mode) on one PostgreSQL database watch six
jobs whose events arrive over a few seconds; one is killed with SIGKILL in the middle of its
jobs' events. The others take its watches over once its lease lapses, and every event of
every job reaches the job's thread once, in order, followed by one summary.

Slack is the fake Web API server and Nebius a small server of jobs that grow events over
time, both in this test's process, which the bot processes reach over loopback. Real time
runs here (separate processes cannot share a fake clock): a lease of 3 s and polls every
0.2 s keep it to some seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import psycopg.rows
import pytest
from aiohttp import web
from psycopg import sql

from bot.clock import RealClock
from bot.store.postgres import PostgresStore
from tests.bot.fake_slack import BOT_TOKEN, FakeSlack, PostedMessage
from tests.bot.store.bot_process import POLL_VARIABLE
from tests.bot.store.conftest import SKIP_POSTGRES

PROCESSES = 3
JOBS = 6
EVENTS = 24
EVENT_EVERY_S = 0.25
LEASE_S = 3.0
POLL_S = 0.2
ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GrowingJobs:
    """Nebius's jobs API for JOBS running jobs: job i's event n appears at
    `started + i * 0.05 + n * EVENT_EVERY_S`; a job succeeds half a second after its last."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    def emitted(self, job_id: str) -> int:
        offset = int(job_id.rsplit("-", 1)[1]) * 0.05
        elapsed = time.monotonic() - self.started - offset
        return 0 if elapsed < 0 else min(EVENTS, int(elapsed / EVENT_EVERY_S) + 1)

    def finished(self, job_id: str) -> bool:
        offset = int(job_id.rsplit("-", 1)[1]) * 0.05
        return time.monotonic() - self.started > offset + EVENTS * EVENT_EVERY_S + 0.5

    async def _job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        status = "succeeded" if self.finished(job_id) else "running"
        return web.json_response(
            {"id": job_id, "object": "fine_tuning.job", "model": "m", "status": status,
             "created_at": 1700000000}
        )  # fmt: skip

    async def _events(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        events = [
            {"id": f"{job_id}-ev{n:02d}", "object": "fine_tuning.job.event",
             "created_at": 1700000000 + n, "level": "info", "message": f"{job_id} step {n:02d}"}
            for n in range(self.emitted(job_id))
        ]  # fmt: skip
        return web.json_response({"object": "list", "data": events[::-1], "has_more": False})

    async def _checkpoints(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [], "has_more": False})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/fine_tuning/jobs/{job_id}", self._job)
        app.router.add_get("/v1/fine_tuning/jobs/{job_id}/events", self._events)
        app.router.add_get("/v1/fine_tuning/jobs/{job_id}/checkpoints", self._checkpoints)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.base_url = f"http://127.0.0.1:{port}/v1/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def url_with_schema(conninfo: str, schema: str) -> str:
    """A postgresql:// URL (what XGENLENS_DATABASE_URL takes) of `schema` in the database."""
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = quote(str(info.get("user") or ""), safe="")
    password = info.get("password")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else f"{user}@" if user else ""
    host = info.get("host") or "127.0.0.1"
    port = info.get("port") or "5432"
    options = quote(f"-c search_path={schema}", safe="")
    return f"postgresql://{auth}{host}:{port}/{info['dbname']}?options={options}"


@pytest.fixture
async def database_url(postgres_database: str | None) -> str:
    if postgres_database is None:
        pytest.skip(SKIP_POSTGRES)
    schema = f"mp_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(postgres_database, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return url_with_schema(postgres_database, schema)


class SlowToAnswerSlack(FakeSlack):
    """Takes each events reply at once but answers it ANSWER_DELAY_S later, so that a process
    can be killed with a post in flight: in the thread, but not known to the process."""

    ANSWER_DELAY_S = 0.4

    def __init__(self) -> None:
        super().__init__(clock=RealClock())  # type: ignore[arg-type]  (real time: processes)
        self.in_flight: set[str] = set()  # channels

    async def _m_chat_postMessage(self, args: dict[str, Any]) -> web.Response:
        answer = await super()._m_chat_postMessage(args)
        if answer.status == 200 and _payload(args.get("metadata")).get("kind") == "events":
            self.in_flight.add(args["channel"])
            try:
                await asyncio.sleep(self.ANSWER_DELAY_S)
            finally:
                self.in_flight.discard(args["channel"])
        return answer


def _payload(metadata: Any) -> dict[str, Any]:
    return (metadata or {}).get("event_payload", {})


@pytest.fixture
async def slack() -> AsyncIterator[SlowToAnswerSlack]:
    fake = SlowToAnswerSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def nebius() -> AsyncIterator[GrowingJobs]:
    jobs = GrowingJobs()
    await jobs.start()
    yield jobs
    await jobs.stop()


class BotProcess:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bot.store.bot_process"],
            cwd=ROOT,
            env={**env, "PORT": str(port)},
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )
        self.session = ""

    async def ready(self, deadline: float) -> None:
        """Its session read, and its HTTP server answering (the store open, watching)."""
        assert self.proc.stdout is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        assert line.startswith("session "), f"{line!r}; log: {self.log.read_text()[-2000:]}"
        self.session = line.split()[1]
        async with httpx.AsyncClient() as client:
            while True:
                assert self.proc.poll() is None, self.log.read_text()[-2000:]
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/healthz")).text == "ok":
                        return
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the bot process did not start"
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def event_numbers(fake: FakeSlack, channel: str, thread_ts: str, job_id: str) -> list[int]:
    """The events a thread shows, in the order its replies were posted (the blocks only: a
    one-event reply repeats its event in the fallback text)."""
    numbers: list[int] = []
    for message in fake.thread(channel, thread_ts):
        if _kind(message) == "events":
            blocks = json.dumps(message.blocks)
            numbers += [int(n) for n in re.findall(rf"{job_id} step (\d+)", blocks)]
    return numbers


def _kind(message: PostedMessage) -> Any:
    return _payload(message.metadata).get("kind")


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_three_processes_one_killed_mid_events_every_event_reaches_its_thread_once(
    database_url: str, slack: SlowToAnswerSlack, nebius: GrowingJobs, tmp_path: Path
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "NEBIUS_", "XGENLENS_", "WANDB_"))
    }
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET="multi-process-signing-secret",
        SLACK_API_URL=slack.api_url,
        NEBIUS_API_KEY="nebius-multi-process-key",
        NEBIUS_BASE_URL=nebius.base_url,
        XGENLENS_DATABASE_URL=database_url,
        XGENLENS_LEASE_S=str(LEASE_S),
        XGENLENS_DATA_DIR=str(tmp_path / "data"),
        **{POLL_VARIABLE: str(POLL_S)},
    )
    bots = [BotProcess(env, free_port(), tmp_path / f"bot-{i}.log") for i in range(PROCESSES)]
    store = PostgresStore(database_url, lease_s=LEASE_S)
    # Looks at the watches without a session of its own (one would count as a live process
    # in each process's fair share).
    observer = await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=psycopg.rows.dict_row
    )
    try:
        deadline = time.monotonic() + 90
        for bot in bots:
            await bot.ready(deadline)
        # The jobs' cards, as the starts posted them; the watches go in once all three are
        # live, so each takes its share (2).
        threads = {}
        await store.open()
        for i in range(JOBS):
            job_id, channel, ts = f"job-{i}", f"C{i}", f"1690000000.{i:06d}"
            slack.messages[(channel, ts)] = PostedMessage(channel, ts, "card", [], None, None)
            await store.add_watch(job_id, channel, ts, "U1")
            threads[job_id] = (channel, ts)
        nebius.started = time.monotonic()
        await store.close()  # hands the watches to the processes

        async def watches() -> list[dict[str, Any]]:
            cur = await observer.execute("SELECT job_id, owner, done FROM watches")
            return await cur.fetchall()

        async def owners() -> dict[str, str | None]:
            return {w["job_id"]: w["owner"] for w in await watches() if not w["done"]}

        sessions = {bot.session for bot in bots}

        async def shared_out() -> bool:
            held = list((await owners()).values())
            return all(s in sessions for s in held) and {held.count(s) for s in sessions} == {2}

        await wait_for(shared_out, 30, "each process to hold two watches")
        victim = bots[0]
        victims_jobs = [j for j, owner in (await owners()).items() if owner == victim.session]

        async def mid_post() -> bool:
            # Some events in each of its threads, and a reply in flight in one of them.
            return all(
                len(event_numbers(slack, *threads[j], j)) >= 2 for j in victims_jobs
            ) and any(threads[j][0] in slack.in_flight for j in victims_jobs)

        await wait_for(mid_post, 30, "the victim to be posting in the middle of its jobs' events")
        victim.proc.send_signal(signal.SIGKILL)
        in_flight = {j for j in victims_jobs if threads[j][0] in slack.in_flight}
        assert in_flight and all(nebius.emitted(j) < EVENTS for j in victims_jobs)
        victim.proc.wait()

        async def all_done() -> bool:
            return all(w["done"] for w in await watches())

        await wait_for(all_done, 60, "every job's summary")
        survivors = {bot.session for bot in bots[1:]}
        finished_by = {w["job_id"]: w["owner"] for w in await watches()}
        assert all(finished_by[j] in survivors for j in victims_jobs)
        # The thread of the reply in flight was read back before anything more was posted.
        read_back = {c.args.get("channel") for c in slack.calls_to("conversations.replies")}
        assert {threads[j][0] for j in in_flight} <= read_back
        for job_id, (channel, ts) in threads.items():
            assert event_numbers(slack, channel, ts, job_id) == list(range(EVENTS)), job_id
            kinds = [_kind(m) for m in slack.thread(channel, ts)]
            assert kinds.count("summary") == 1 and kinds[-1] == "summary", job_id
    finally:
        for bot in bots:
            bot.stop()
        await observer.close()
