"""Acknowledgement latency of `/finetune` with 50 concurrent commands (target: p99 < 100 ms).

The real HTTP-mode app (the uvicorn server of `bot.slack.serve.http_server`, signature
checks on) answers `/finetune help` while a small stand-in for Slack's Web API, in a process
of its own, takes the replies; the run checks that every command got its ephemeral answer.
Baseline in the same run: the same app and route with a listener that does the work before
acknowledging, the design this one avoids.

Each latency runs from writing a signed request to having its whole response. The load
generator shares the 2 cores with the bot, so by default it is a lean HTTP/1.1 client over
kept-alive connections (about 0.1 ms of CPU a request); `--client httpx` uses httpx, the
client of earlier figures, whose own CPU (about 1.5 ms a request) lands in the latencies.

    .venv/bin/python -m bench.bot_ack [--concurrency 50] [--rounds 5] [--client lean|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import multiprocessing
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import web

from bot.config import BotSettings
from bot.core import CommandRequest
from bot.slack.app import SlackBot, build_slack_bot
from bot.slack.serve import http_server

BOT_TOKEN = "xoxb-bench-bot-token"
SIGNING_SECRET = "bench-signing-secret"
REPLY_WAIT_S = 30.0
RESPONSE_WAIT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign(body: str, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Slack's request signature (v0: HMAC-SHA256 of `v0:timestamp:body`)."""
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def work_before_ack(slack: SlackBot) -> None:
    """Baseline: the same app and route, with a `/finetune` listener that answers first and
    then acknowledges."""

    async def slow(ack: Any, command: dict[str, Any], context: dict[str, Any]) -> None:
        request = CommandRequest(command["text"], command["user_id"], command["channel_id"])
        await slack.bot.commands.run(request)
        await ack()

    slack.command_listener = slow


def fake_slack(port: Any, ready: Any, ephemerals: Any) -> None:
    """Slack's Web API as far as this run needs it: who the bot is, and `ok` to the rest.

    In a process of its own, so that its CPU is not the bot's; counts the ephemeral
    answers so that the run can check every command was really answered.
    """

    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        await request.read()
        if method == "auth.test":
            return web.json_response(
                {"ok": True, "team": "Bench", "team_id": "T1", "user": "xgenlens"}
                | {"user_id": "UBOT", "bot_id": "B1"}
            )
        if method == "chat.postEphemeral":
            with ephemerals.get_lock():
                ephemerals.value += 1
        return web.json_response({"ok": True, "message_ts": "1700000000.000100"})

    async def run_fake() -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", api)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.value = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(run_fake())


def serve(baseline: bool, port: int, slack_url: str) -> None:
    """The bot's own HTTP server, in its own process so that the load generator does not
    share its event loop."""
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
        http_server(slack, "127.0.0.1", port, log_level="warning").run()


def wait_until_serving(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the bot did not start")


def command_body(i: int) -> str:
    return urlencode(
        {
            "command": "/finetune",
            "text": "help",
            "user_id": f"U{i}",
            "channel_id": "C1",
            "team_id": "T1",
            "trigger_id": f"t{i}",
        }
    )


def raw_request(port: int, body: str) -> bytes:
    """One signed command as HTTP/1.1 bytes, built (and signed) before its clock starts."""
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body.encode())),
        **sign(body),
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"POST /slack/events HTTP/1.1\r\n{head}\r\n{body}".encode()


class Connection(asyncio.Protocol):
    """One keep-alive connection of the load generator: writes a request and notes the
    moment its whole response has arrived. It does next to nothing else, so that its own
    CPU (on the machine it shares with the bot) adds as little as it can to the figures."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.waiter: asyncio.Future[int] | None = None
        self.done_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:  # Starlette always sends one; anything else is not read here
            self.fail(RuntimeError("a response without Content-Length"))
            return
        if len(rest) < length:
            return
        self.done_at = time.perf_counter()
        self.buffer = rest[length:]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(int(head.split(b" ", 2)[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError("the bot closed the connection"))

    def fail(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

    async def send(self, request: bytes, start: float) -> float:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        status = await asyncio.wait_for(self.waiter, RESPONSE_WAIT_S)
        if status != 200:
            raise RuntimeError(f"the bot answered HTTP {status}")
        return self.done_at - start


class Client:
    """Requests on kept-alive connections, opened on first use inside the timed request
    (as httpx's pool does), so the first burst pays for connecting as it did before."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[Connection] = []

    async def post(self, request: bytes) -> float:
        start = time.perf_counter()
        if self.idle:
            connection = self.idle.pop()
        else:
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(Connection, "127.0.0.1", self.port)
        elapsed = await connection.send(request, start)
        self.idle.append(connection)
        return elapsed

    def close(self) -> None:
        for connection in self.idle:
            if connection.transport is not None:
                connection.transport.close()


async def measure(port: int, concurrency: int, rounds: int) -> list[float]:
    """Seconds from sending each request to having its whole response: `rounds` bursts of
    `concurrency` requests at once."""
    client = Client(port)
    latencies: list[float] = []
    try:
        await client.post(raw_request(port, command_body(-1)))  # warm-up
        for _ in range(rounds):
            requests = [raw_request(port, command_body(i)) for i in range(concurrency)]
            latencies += await asyncio.gather(*(client.post(r) for r in requests))
            await asyncio.sleep(0.5)  # let the replies of the round go out
    finally:
        client.close()
    return latencies


async def measure_httpx(port: int, concurrency: int, rounds: int) -> list[float]:
    """The same with httpx as the client (the figures before the lean client; its own CPU,
    about 1.5 ms a request, lands in the latencies on this 2-core machine)."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as http:

        async def one(i: int) -> float:
            body = command_body(i)
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


def wait_for_replies(ephemerals: Any, expected: int) -> int:
    deadline = time.monotonic() + REPLY_WAIT_S
    while ephemerals.value < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return ephemerals.value


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run(concurrency: int, rounds: int, client: str) -> None:
    timed = measure if client == "lean" else measure_httpx
    results = {}
    slack_port, slack_ready = multiprocessing.Value("i", 0), multiprocessing.Event()
    ephemerals = multiprocessing.Value("i", 0)
    slack = multiprocessing.Process(
        target=fake_slack, args=(slack_port, slack_ready, ephemerals), daemon=True
    )
    slack.start()
    if not slack_ready.wait(30):
        raise RuntimeError("the fake Slack did not start")
    slack_url = f"http://127.0.0.1:{slack_port.value}/api/"
    for name in ("ack first (this bot)", "work before ack (baseline)"):
        port = free_port()
        server = multiprocessing.Process(
            target=serve, args=("baseline" in name, port, slack_url), daemon=True
        )
        server.start()
        try:
            wait_until_serving(port)
            with ephemerals.get_lock():
                ephemerals.value = 0
            results[name] = asyncio.run(timed(port, concurrency, rounds))
            expected = len(results[name]) + 1  # and the warm-up
            answered = wait_for_replies(ephemerals, expected)
            if answered != expected:
                raise RuntimeError(f"{name}: {answered} of {expected} commands were answered")
        finally:
            server.terminate()
            server.join()
    slack.terminate()
    slack.join()
    print(
        f"/finetune help, {concurrency} concurrent, {rounds} rounds, HTTP on loopback, "
        f"{client} client"
    )
    for name, values in results.items():
        print(
            f"  {name:<28} median {statistics.median(values) * 1000:7.1f} ms  "
            f"p99 {p(values, 0.99):7.1f} ms  ({len(values)} requests, all answered)"
        )
    ours, base = results.values()
    print(f"  p99 ratio baseline/ours: {p(base, 0.99) / p(ours, 0.99):.1f}x")
    print(f"  target p99 < 100 ms: {'met' if p(ours, 0.99) < 100 else 'NOT met'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--client",
        choices=("lean", "httpx"),
        default="lean",
        help="load generator: raw HTTP/1.1 (default) or httpx, the client of earlier figures",
    )
    args = parser.parse_args()
    run(args.concurrency, args.rounds, args.client)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
