"""Acknowledgement latency of `/finetune` with 50 concurrent commands (target: p99 < 100 ms).

The real HTTP-mode app (Bolt + Starlette under uvicorn on loopback, signature checks on)
answers `/finetune help` while a local fake Slack Web API takes the replies. Baseline in the
same run: the same app with a listener that does the work before acknowledging, the design
this one avoids.

    .venv/bin/python -m bench.bot_ack [--concurrency 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from slack_bolt.async_app import AsyncApp

from bot.config import BotSettings
from bot.core import CommandRequest
from bot.slack.app import SlackBot, build_slack_bot
from bot.slack.runner import http_app
from tests.bot.fake_slack import BOT_TOKEN, FakeSlack
from tests.bot.harness import SIGNING_SECRET, sign


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def work_before_ack(slack: SlackBot) -> None:
    """Baseline: replace the listener with one that answers first, then acknowledges."""
    app = AsyncApp(
        client=slack.app.client,
        signing_secret=SIGNING_SECRET,
        raise_error_for_unhandled_request=False,
        process_before_response=True,  # as the bot's own app; only the order differs
    )

    @app.command("/finetune")
    async def slow(ack: Any, command: dict[str, Any]) -> None:
        request = CommandRequest(command["text"], command["user_id"], command["channel_id"])
        await slack.bot.commands.run(request)
        await ack()

    slack.app = app


def fake_slack(port: Any, ready: Any) -> None:
    """The fake Slack Web API in a process of its own: its CPU is not the bot's."""

    async def run_fake() -> None:
        fake = FakeSlack()
        await fake.start()
        port.value = int(fake.base_url.rsplit(":", 1)[1])
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(run_fake())


def serve(baseline: bool, port: int, slack_url: str, ready: Any) -> None:
    """The bot under uvicorn, in its own process so that the load generator does not share
    its event loop."""

    async def run_server() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            settings = BotSettings(
                slack_bot_token=BOT_TOKEN,
                slack_signing_secret=SIGNING_SECRET,
                slack_api_url=slack_url,
                database_path=Path(tmp) / "bot.sqlite3",
            )
            slack = build_slack_bot(settings)
            if baseline:
                work_before_ack(slack)
            config = uvicorn.Config(
                http_app(slack), host="127.0.0.1", port=port, log_level="warning"
            )
            server = uvicorn.Server(config)
            serving = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.01)
            ready.set()
            await serving

    asyncio.run(run_server())


async def measure(port: int, concurrency: int, rounds: int) -> list[float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as http:

        async def one(i: int) -> float:
            body = urlencode(
                {
                    "command": "/finetune",
                    "text": "help",
                    "user_id": f"U{i}",
                    "channel_id": "C1",
                    "team_id": "T1",
                    "trigger_id": f"t{i}",
                }
            )
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
            start = time.perf_counter()
            response = await http.post("/slack/events", content=body, headers=headers)
            elapsed = time.perf_counter() - start
            assert response.status_code == 200, response.text
            return elapsed

        await one(-1)  # warm-up: Bolt's first request asks auth.test
        for _ in range(rounds):
            latencies += await asyncio.gather(*(one(i) for i in range(concurrency)))
            await asyncio.sleep(0.5)  # let the replies of the round go out
    return latencies


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run(concurrency: int, rounds: int) -> None:
    results = {}
    slack_port, slack_ready = multiprocessing.Value("i", 0), multiprocessing.Event()
    slack = multiprocessing.Process(target=fake_slack, args=(slack_port, slack_ready), daemon=True)
    slack.start()
    if not slack_ready.wait(30):
        raise RuntimeError("the fake Slack did not start")
    slack_url = f"http://127.0.0.1:{slack_port.value}/api/"
    for name in ("ack first (this bot)", "work before ack (baseline)"):
        port = free_port()
        ready = multiprocessing.Event()
        server = multiprocessing.Process(
            target=serve, args=("baseline" in name, port, slack_url, ready), daemon=True
        )
        server.start()
        try:
            if not ready.wait(30):
                raise RuntimeError("the bot did not start")
            results[name] = asyncio.run(measure(port, concurrency, rounds))
        finally:
            server.terminate()
            server.join()
    slack.terminate()
    slack.join()
    print(f"/finetune help, {concurrency} concurrent, {rounds} rounds, HTTP on loopback")
    for name, values in results.items():
        print(
            f"  {name:<28} median {statistics.median(values) * 1000:7.1f} ms  "
            f"p99 {p(values, 0.99):7.1f} ms  ({len(values)} requests)"
        )
    ours, base = results.values()
    print(f"  p99 ratio baseline/ours: {p(base, 0.99) / p(ours, 0.99):.1f}x")
    print(f"  target p99 < 100 ms: {'met' if p(ours, 0.99) < 100 else 'NOT met'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    run(args.concurrency, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
