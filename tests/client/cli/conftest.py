"""Fixtures for the command-line tests: Nebius's settings in the environment, the commands'
client on the fake clock, and the mocked API at the base URL those settings name."""

from __future__ import annotations

from pathlib import Path

import pytest
import respx

from client import NebiusClient
from client.cli import finetune
from client.deployments import v0_root
from tests.client.conftest import API_KEY, BASE_URL, FakeTime

# Price settings of the machine running the tests must not change what a command says.
PRICE_VARS = ("NEBIUS_PRICE_SMALL_PER_M", "NEBIUS_PRICE_LARGE_PER_M", "NEBIUS_TRAINING_PRICES")


@pytest.fixture
def base_url() -> str:
    """NEBIUS_BASE_URL; a test parametrizes it to talk to the local engine instead."""
    return BASE_URL


@pytest.fixture
def api_root(base_url: str) -> str:
    return base_url


@pytest.fixture(autouse=True)
def nebius_env(monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime, base_url: str) -> None:
    monkeypatch.setenv("NEBIUS_API_KEY", API_KEY)
    monkeypatch.setenv("NEBIUS_BASE_URL", base_url)
    for name in PRICE_VARS:
        monkeypatch.delenv(name, raising=False)
    # Retries, waits and --follow use the fake clock: no test waits.
    monkeypatch.setattr(
        finetune,
        "build_client",
        lambda: NebiusClient.from_env(sleep=fake_time.sleep, clock=fake_time.clock),
    )
    monkeypatch.setattr(finetune, "sleep", fake_time.sleep)


@pytest.fixture
def prices(api: respx.MockRouter, base_url: str) -> respx.Route:
    """GET /v0/models answering 404: no training prices from the API, so the published ones
    apply. A test's own answer for it replaces this one."""
    return api.get(v0_root(base_url) + "models").respond(404)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`finetune ARGV`: its exit code, stdout and stderr, which never hold a traceback or
    the API key."""
    code = finetune.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert API_KEY not in out + err
    return code, out, err


def create_args(samples_dir: Path, *flags: str, model: str = "m") -> list[str]:
    """`finetune create` of the sample training file on `model`, without progress bars."""
    training = str(samples_dir / "sample_training_data.jsonl")
    return ["create", "--model", model, "--training-file", training, "--no-progress", *flags]
