"""One process watching many running jobs (targets for 1,000: at most one status and one
events request per job per poll interval; event-to-thread latency p95 within the interval
plus 1 s; memory under 200 MB).

A local Nebius stand-in and a fake Slack (one message per second per channel, 429 past it)
run in a second process on loopback; this process runs only the bot's Watcher (asyncio, no
thread per job). Each job emits an event every `--event-every` seconds from a random phase.

    .venv/bin/python -m bench.bot_watch [--jobs 1000] [--channels 500] [--interval 10]
                                         [--duration 60] [--event-every 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import resource
import socket
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import RealClock
from bot.core.watcher import Watcher
from bot.slack.web_chat import SlackChat
from bot.store import SQLiteStore
from client import NebiusClient

TOKEN = "xoxb-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stand_ins(port: int, jobs: int, event_every: float, ready: Any) -> None:
    """Nebius (jobs that emit events over time) and Slack (paced), in one aiohttp server."""
    start = time.time()
    phase = {f"job-{i}": random.Random(i).uniform(0, event_every) for i in range(jobs)}
    requests: Counter[str] = Counter()
    posted: list[tuple[str, float, list[float]]] = []  # (channel, received, event times)
    last_post: dict[str, float] = {}
    posted_upto: dict[str, int] = {}
    duplicates = [0]
    lost = [0]  # events a reply skipped (its first event after a gap)
    polled: dict[str, list[float]] = {}  # each job's status requests (wall clock)
    threads: dict[tuple[str, str], list[dict[str, Any]]] = {}  # replies' metadata by thread
    rate_limited = 0

    def events_of(job_id: str) -> list[dict[str, Any]]:
        now = time.time() - start
        count = int((now - phase[job_id]) // event_every) + 1 if now >= phase[job_id] else 0
        return [
            {
                "id": f"{job_id}-e{n}",
                "created_at": int(start + phase[job_id] + n * event_every),
                "message": f"step {n}",
                "data": {"t": start + phase[job_id] + n * event_every},
            }
            for n in range(count)
        ]

    async def job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        requests["status"] += 1
        polled.setdefault(job_id, []).append(time.time())
        return web.json_response({"id": job_id, "status": "running", "model": "m"})

    async def events(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        requests["events"] += 1
        newest_first = list(reversed(events_of(job_id)))[: int(request.query.get("limit", 100))]
        return web.json_response({"data": newest_first, "has_more": False})

    async def slack(request: web.Request) -> web.Response:
        nonlocal rate_limited
        method = request.match_info["method"]
        body = await request.read()
        args = json.loads(body) if body and request.content_type == "application/json" else {}
        if method == "chat.postMessage":
            channel = args["channel"]
            now = time.monotonic()
            if now - last_post.get(channel, -10.0) < 1.0:
                rate_limited += 1
                return web.json_response(
                    {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
                )
            last_post[channel] = now
            metadata = args.get("metadata") or {}
            payload = metadata.get("event_payload", {})
            if args.get("thread_ts"):
                thread = threads.setdefault((channel, args["thread_ts"]), [])
                thread.append({"ts": f"{now:.6f}", "metadata": metadata})
            if payload.get("kind") == "events":
                # The reply holds every event after the job's previous reply, up to this id.
                job_id = payload["job_id"]
                last = int(payload["last_event_id"].rsplit("-e", 1)[1])
                first = posted_upto.get(job_id, -1) + 1
                carried = int(payload["first_event_id"].rsplit("-e", 1)[1])
                duplicates[0] += max(0, min(last, first - 1) - carried + 1)  # posted twice
                lost[0] += max(0, carried - first)
                posted_upto[job_id] = max(last, posted_upto.get(job_id, -1))
                times = [start + phase[job_id] + n * event_every for n in range(first, last + 1)]
                posted.append((channel, time.time(), times))
            return web.json_response({"ok": True, "channel": channel, "ts": f"{now:.6f}"})
        if method == "conversations.replies":
            # What a restart (or a takeover) reads back: the thread's replies and metadata.
            asked = {**request.query, **args}  # the SDK asks with a GET
            messages = threads.get((asked.get("channel", ""), asked.get("ts", "")), [])
            return web.json_response({"ok": True, "messages": messages, "has_more": False})
        return web.json_response({"ok": True, "messages": [], "has_more": False})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": requests,
                "posted": posted,
                "rate_limited": rate_limited,
                "duplicates": duplicates[0],
                "lost": lost[0],
                "polled": polled,
                "delivered": sum(n + 1 for n in posted_upto.values()),
                "emitted": {j: len(events_of(j)) for j in phase},
            }
        )

    app = web.Application()
    app.router.add_get("/v1/fine_tuning/jobs/{job_id}", job)
    app.router.add_get("/v1/fine_tuning/jobs/{job_id}/events", events)
    app.router.add_post("/api/{method}", slack)
    app.router.add_get("/api/{method}", slack)
    app.router.add_get("/stats", stats)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def watch(args: argparse.Namespace, port: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    client = AsyncWebClient(token=TOKEN, base_url=f"{base}/api/")
    chat = SlackChat(client, bot_token=TOKEN, clock=RealClock())
    nebius = NebiusClient("bench-key", f"{base}/v1/", max_retries=2)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bot.sqlite3")
        for i in range(args.jobs):
            await store.add_watch(f"job-{i}", f"C{i % args.channels}", f"{i}.0", "U1")
        watcher = Watcher(store, chat, nebius, poll_s={"running": args.interval})
        watcher_started = time.monotonic()
        task = asyncio.create_task(watcher.run())
        await asyncio.sleep(args.duration)
        task.cancel()
        elapsed = time.monotonic() - watcher_started
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        await store.close()
    await chat.aclose()
    await nebius.aclose()
    return {"elapsed": elapsed, "rss_mb": rss_mb, "polls": watcher.polls}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=500)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--event-every", type=float, default=15.0)
    args = parser.parse_args()
    port = free_port()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(
        target=stand_ins, args=(port, args.jobs, args.event_every, ready), daemon=True
    )
    server.start()
    try:
        ready.wait(30)
        time.sleep(0.5)
        ours = asyncio.run(watch(args, port))
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as answer:
            stats = json.loads(answer.read())
    finally:
        server.terminate()
        server.join()
    rounds = ours["elapsed"] / args.interval
    per_job = {k: v / args.jobs / rounds for k, v in stats["requests"].items()}
    latencies = [received - t for _, received, times in stats["posted"] for t in times]
    print(
        f"{args.jobs} running jobs in {args.channels} channels, poll interval {args.interval:g} s,"
        f" {ours['elapsed']:.0f} s, one event per job every {args.event_every:g} s"
    )
    print(
        f"  requests per job per interval: status {per_job.get('status', 0):.2f}, "
        f"events {per_job.get('events', 0):.2f} (target <= 1 each)"
    )
    emitted = sum(stats["emitted"].values())
    print(
        f"  event replies posted: {len(stats['posted'])}; Slack 429s: {stats['rate_limited']}; "
        f"events delivered {stats['delivered']} of {emitted} emitted by the end "
        f"(the rest came after the last poll or wait behind the 1/s limit); "
        f"posted twice: {stats['duplicates']}"
    )
    if latencies:
        p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))]
        print(
            f"  event-to-thread latency: median {statistics.median(latencies):.2f} s, "
            f"p95 {p95:.2f} s (target <= {args.interval + 1:g} s)"
        )
    print(f"  peak memory of the watching process: {ours['rss_mb']:.0f} MB (target < 200 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
