"""Fixtures of the bot's tests: the fake Slack, a Nebius mocked with respx, the harness; and
what a checked upload leaves in the store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import respx
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import BotSettings
from bot.slack.app import build_slack_bot
from bot.slack.web_chat import SlackChat
from bot.store import Store
from client import NebiusClient
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import BOT_TOKEN, FakeSlack
from tests.bot.harness import SIGNING_SECRET, SlackHarness
from tests.bot.watching import FakeJobs

NEBIUS_URL = "https://nebius.test/v1/"
NEBIUS_KEY = "nebius-test-key-secret-42"
# What the bot's check of a 300,000-token training file reports (the tokens make its cost).
TRAINING_REPORT = {
    "file": "t",
    "filename": "train.jsonl",
    "role": "training",
    "stats": {"tokens": {"total": 300_000}},
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake_slack(clock: FakeClock) -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(clock=clock)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def nebius_api() -> respx.Router:
    """Nebius, mocked: tests add the routes they need."""
    return respx.Router(base_url=NEBIUS_URL, assert_all_called=False)


@pytest.fixture
def settings(isolated_environment: Path, fake_slack: FakeSlack) -> BotSettings:
    return BotSettings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake_slack.api_url,
        nebius_api_key=NEBIUS_KEY,
        nebius_base_url=NEBIUS_URL,
        data_dir=isolated_environment,
        database_path=isolated_environment / "bot.sqlite3",
    )


class RouterTransport(httpx.AsyncBaseTransport):
    """Serves a respx router as a transport, answering with fresh streams (as a server
    would), so the client's streaming downloads read them like real responses."""

    def __init__(self, router: respx.Router) -> None:
        self.router = router

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        answer = await self.router.async_handler(request)
        body = await answer.aread()
        headers = [(k, v) for k, v in answer.headers.items() if k.lower() != "content-encoding"]
        return httpx.Response(answer.status_code, headers=headers, stream=httpx.ByteStream(body))


def mocked_nebius(router: respx.Router, clock: FakeClock, *, max_retries: int = 0) -> NebiusClient:
    """A client of Nebius mocked by `router`, which waits out its retries on the fake clock."""
    return NebiusClient(
        NEBIUS_KEY,
        NEBIUS_URL,
        max_retries=max_retries,
        sleep=clock.sleep,
        transport=RouterTransport(router),
    )


def make_harness(
    settings: BotSettings, fake: FakeSlack, clock: FakeClock, nebius_api: respx.Router
) -> SlackHarness:
    nebius = mocked_nebius(nebius_api, clock, max_retries=2)
    slack = build_slack_bot(settings, nebius=nebius, clock=clock)
    return SlackHarness.create(fake, settings, slack)


HarnessFactory = Callable[..., SlackHarness]


@pytest.fixture
async def harness_factory(
    settings: BotSettings, fake_slack: FakeSlack, clock: FakeClock, nebius_api: respx.Router
) -> AsyncIterator[HarnessFactory]:
    """Builds harnesses with changed settings (`factory(max_upload_bytes=100)`)."""
    made: list[SlackHarness] = []

    def factory(**changes: object) -> SlackHarness:
        h = make_harness(settings.model_copy(update=changes), fake_slack, clock, nebius_api)
        made.append(h)
        return h

    yield factory
    for h in made:
        await h.aclose()


@pytest.fixture
async def harness(harness_factory: HarnessFactory) -> SlackHarness:
    return harness_factory()


async def remember_checked_upload(store: Store) -> None:
    """F1, train.jsonl, shared by U1 in C1: checked valid (TRAINING_REPORT) and already
    uploaded to Nebius as file-train."""
    await store.claim_upload("F1", "C1", None, "train.jsonl", "U1")
    await store.finish_upload("F1", sha256="abc", valid=True, fmt="chat", report=TRAINING_REPORT)
    await store.remember_nebius_file("abc", "file-train", "train.jsonl", 10)


@pytest.fixture
def nebius_jobs(nebius_api: respx.Router) -> FakeJobs:
    jobs = FakeJobs()
    jobs.route(nebius_api)
    return jobs


@pytest.fixture
async def world(
    fake_slack: FakeSlack, clock: FakeClock, nebius_api: respx.Router, tmp_path
) -> AsyncIterator[dict]:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    chat = SlackChat(client, bot_token=BOT_TOKEN, clock=clock)
    nebius = mocked_nebius(nebius_api, clock)
    path = tmp_path / "bot.sqlite3"
    yield {"chat": chat, "nebius": nebius, "path": path, "clock": clock}
    await chat.aclose()
    await nebius.aclose()
