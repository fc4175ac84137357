"""Fixtures for the client tests: a client on a fake base URL and a clock that never waits."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator

import pytest
import respx

from client import NebiusClient

BASE_URL = "https://nebius.test/v1/"
# Above /v1: a module whose routes reach the deployments under /v0 writes them from here.
HOST_URL = "https://nebius.test/"
# The local engine's default address: a loopback base URL, so the client takes it for the engine.
LOCAL_URL = "http://127.0.0.1:8800/v1/"
API_KEY = "sk-test-SECRET-key-0123456789"


class FakeTime:
    """sleep() records the delay and moves the clock on; no test waits for real."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_700_000_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.wall += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def api_root() -> str:
    """What the mocked routes' paths are relative to; a module overrides it with HOST_URL."""
    return BASE_URL


@pytest.fixture
def api(api_root: str) -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=api_root, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client(fake_time: FakeTime, api: respx.MockRouter) -> AsyncIterator[NebiusClient]:
    async with NebiusClient(
        API_KEY,
        BASE_URL,
        max_retries=3,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        wall_clock=fake_time.wall_clock,
        rng=random.Random(0),
    ) as c:
        yield c


def job_json(job_id: str = "ftjob-1", **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": job_id,
        "object": "fine_tuning.job",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "created_at": 1_700_000_000,
        "status": "running",
        "training_file": "file-train",
        "validation_file": None,
    }
    base.update(fields)
    return base


def file_json(file_id: str = "file-1", **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": file_id,
        "object": "file",
        "bytes": 10,
        "created_at": 1_700_000_000,
        "filename": "train.jsonl",
        "purpose": "fine-tune",
        "status": "processed",
    }
    base.update(fields)
    return base
