"""A job's cost from the store's report of its training file and the client's price: the
estimate (tokens × epochs) and the running cost; free on the local engine, with no call."""

from __future__ import annotations

from pathlib import Path

import respx

from bot.core.costs import Costs
from bot.store import SQLiteStore
from client import Job, NebiusClient
from tests.bot.conftest import NEBIUS_KEY, NEBIUS_URL, RouterTransport, remember_checked_upload


async def stored(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "bot.sqlite3")
    await remember_checked_upload(store)
    return store


def job(**changes: object) -> Job:
    data = {
        "id": "ftjob-1",
        "status": "running",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "training_file": "file-train",
        "hyperparameters": {"n_epochs": 2},
        "trained_steps": 5,
        "total_steps": 10,
        "trained_tokens": 250_000,
    }
    return Job.model_validate({**data, **changes})


async def test_on_nebius_the_card_has_the_running_cost_and_the_estimate(tmp_path: Path) -> None:
    store = await stored(tmp_path)
    router = respx.Router(base_url=NEBIUS_URL, assert_all_called=False)
    # Nebius's own price for the model wins over the published one.
    router.get("https://nebius.test/v0/models").respond(
        json=[
            {
                "name": "meta-llama/Meta-Llama-3.1-8B-Instruct",
                "fine_tune": {"training_price_per_million_tokens": 0.5},
            }
        ]
    )
    nebius = NebiusClient(NEBIUS_KEY, NEBIUS_URL, transport=RouterTransport(router))
    costs = Costs(store, nebius)
    text = await costs.card_text(job())
    assert text is not None
    assert text.startswith("$0.12 so far (250,000 trained tokens")
    assert "estimate ≈ $0.30 (300k tokens × 2 epochs at $0.50 per million" in text
    assert await costs.summary_text(job(status="succeeded")) == "$0.12 (250,000 trained tokens)"
    # A job the bot did not start (no report) still shows what it cost.
    assert await costs.card_text(job(training_file="file-other")) == text.split("; estimate")[0]
    await nebius.aclose()
    await store.close()


async def test_on_the_local_engine_it_is_free_without_asking(tmp_path: Path) -> None:
    store = await stored(tmp_path)
    router = respx.Router(assert_all_called=False)  # any call would fail: none is made
    nebius = NebiusClient("k", "http://127.0.0.1:8800/v1/", transport=RouterTransport(router))
    costs = Costs(store, nebius)
    assert costs.free
    assert await costs.card_text(job()) == "free on the local engine"
    assert costs.form_estimates(await store.upload("F1")) == []
    assert not router.calls
    await nebius.aclose()
    await store.close()


async def test_an_unreachable_price_leaves_the_cost_out_and_never_fails(tmp_path: Path) -> None:
    store = await stored(tmp_path)
    router = respx.Router(base_url=NEBIUS_URL, assert_all_called=False)
    router.get("https://nebius.test/v0/models").respond(500)
    nebius = NebiusClient(NEBIUS_KEY, NEBIUS_URL, max_retries=0, transport=RouterTransport(router))
    costs = Costs(store, nebius)
    # The published price stands in for an API that cannot say.
    assert (await costs.card_text(job()) or "").startswith("$0.10 so far")
    bands = costs.form_estimates(await store.upload("F1"))
    assert [(label, round(e.usd or 0, 2)) for label, e in bands] == [
        ("models under 20B parameters", 0.36),
        ("20B parameters and more", 2.52),
    ]
    await nebius.aclose()
    await store.close()
