"""Training cost: sizes from model ids, Nebius's two price bands and the 20B edge, the
environment's overrides, the API's price preferred when `GET /v0/models` gives one, and the
texts people read before and during a job."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest
import respx

from client import ConfigError, NebiusClient
from client.config import PriceConfig, resolve_price_config
from client.cost import (
    FREE_TEXT,
    PUBLISHED_LARGE_PER_M,
    PUBLISHED_SMALL_PER_M,
    api_price_in,
    estimate,
    estimate_from_report,
    format_price,
    format_usd,
    free_price,
    job_cost,
    model_size_b,
    price_for,
    short_tokens,
)
from client.models import Job
from client.validation import validate_file
from tests.client.conftest import API_KEY, BASE_URL, LOCAL_URL, FakeTime, job_json

V0_MODELS = "https://nebius.test/v0/models"
SMALL = "meta-llama/Llama-3.1-8B-Instruct"
LARGE = "meta-llama/Llama-3.3-70B-Instruct"


@pytest.fixture(autouse=True)
def no_price_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("NEBIUS_PRICE_SMALL_PER_M", "NEBIUS_PRICE_LARGE_PER_M", "NEBIUS_TRAINING_PRICES"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------------- sizes and bands


@pytest.mark.parametrize(
    ("model", "size"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", 8),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct", 70),
        ("meta-llama/Llama-3.1-70B", 70),
        ("Qwen/Qwen3-235B-A22B", 235),  # an MoE counts its total parameters
        ("Qwen/Qwen3-30B-A3B-Instruct-2507", 30),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 56),
        ("openai/gpt-oss-20b", 20),
        ("Qwen/Qwen3-0.6B", 0.6),
        ("google/gemma-2-9b-it", 9),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", 0.135),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:my-model-JuNN", 8),
        ("deepseek-ai/DeepSeek-V3", None),
        ("microsoft/Phi-3-mini-4k-instruct", None),
        ("", None),
    ],
)
def test_size_is_read_from_the_model_id(model: str, size: float | None) -> None:
    assert model_size_b(model) == size


@pytest.mark.parametrize(
    ("model", "per_million"),
    [
        (SMALL, PUBLISHED_SMALL_PER_M),
        ("org/Model-19.5B", PUBLISHED_SMALL_PER_M),
        ("openai/gpt-oss-20b", PUBLISHED_LARGE_PER_M),  # "under 20B" is small: 20B is large
        (LARGE, PUBLISHED_LARGE_PER_M),
        ("Qwen/Qwen3-235B-A22B", PUBLISHED_LARGE_PER_M),
    ],
)
def test_published_bands_and_the_20b_edge(model: str, per_million: float) -> None:
    price = price_for(model)
    assert (price.per_million, price.source) == (per_million, "published")
    assert price.cost(1_000_000) == pytest.approx(per_million)
    assert (PUBLISHED_SMALL_PER_M, PUBLISHED_LARGE_PER_M) == (0.40, 2.80)


def test_price_text_says_where_it_comes_from() -> None:
    assert price_for(SMALL).text == (
        "$0.40 per million trained tokens (published price for models under 20B "
        "parameters; this one is 8B)"
    )
    assert price_for("openai/gpt-oss-20b").text == (
        "$2.80 per million trained tokens (published price for models of 20B parameters "
        "and more; this one is 20B)"
    )


def test_unknown_size_is_unknown_not_guessed() -> None:
    price = price_for("deepseek-ai/DeepSeek-V3")
    assert price.per_million is None and price.source == "unknown"
    assert price.cost(1000) is None
    assert "names no model size" in price.text
    assert "NEBIUS_TRAINING_PRICES='deepseek-ai/DeepSeek-V3=PRICE'" in price.text


# ---------------------------------------------------------------------- configuration


def test_environment_overrides_bands_and_single_models() -> None:
    config = resolve_price_config(
        {
            "NEBIUS_PRICE_SMALL_PER_M": "0.5",
            "NEBIUS_PRICE_LARGE_PER_M": " $3 ",
            "NEBIUS_TRAINING_PRICES": "deepseek-ai/DeepSeek-V3 = 4.25, ,org/Tiny-1B=0",
        }
    )
    assert config == PriceConfig(0.5, 3.0, {"deepseek-ai/DeepSeek-V3": 4.25, "org/Tiny-1B": 0.0})
    small, large = price_for(SMALL, config), price_for(LARGE, config)
    assert (small.per_million, small.source) == (0.5, "configured")
    assert "NEBIUS_PRICE_SMALL_PER_M" in small.text
    assert (large.per_million, large.source) == (3.0, "configured")
    assert "NEBIUS_PRICE_LARGE_PER_M" in large.text
    # A model named in the map takes its own price, whatever its size says.
    assert price_for("deepseek-ai/DeepSeek-V3", config).per_million == 4.25
    assert price_for("org/Tiny-1B", config).per_million == 0.0
    assert "set in NEBIUS_TRAINING_PRICES" in price_for("org/Tiny-1B", config).text


def test_one_band_configured_leaves_the_other_published() -> None:
    config = resolve_price_config({"NEBIUS_PRICE_LARGE_PER_M": "2"})
    assert price_for(SMALL, config).source == "published"
    assert price_for(LARGE, config).per_million == 2.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEBIUS_PRICE_SMALL_PER_M": "cheap"}, "NEBIUS_PRICE_SMALL_PER_M: 'cheap' is not a price"),
        ({"NEBIUS_PRICE_LARGE_PER_M": "-1"}, "NEBIUS_PRICE_LARGE_PER_M: a price must be"),
        ({"NEBIUS_PRICE_LARGE_PER_M": "nan"}, "NEBIUS_PRICE_LARGE_PER_M: a price must be"),
        (
            {"NEBIUS_TRAINING_PRICES": "a/B-8B=0.4,oops"},
            "NEBIUS_TRAINING_PRICES, entry 2: 'oops' is not model=price",
        ),
        (
            {"NEBIUS_TRAINING_PRICES": "a/B-8B=x"},
            "NEBIUS_TRAINING_PRICES, entry 1 (a/B-8B): 'x' is not a price",
        ),
        ({"NEBIUS_TRAINING_PRICES": "=1"}, "NEBIUS_TRAINING_PRICES, entry 1: '=1'"),
        ({"NEBIUS_TRAINING_PRICES": "a=1=2"}, "has more than one '='"),
    ],
)
def test_bad_configuration_names_the_variable_and_entry(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_price_config(env)
    assert message in info.value.message


# ---------------------------------------------------------------------- the API's price


def listing(*items: dict[str, object]) -> list[dict[str, object]]:
    return list(items)


def priced(name: str, price: object) -> dict[str, object]:
    return {"name": name, "fine_tune": {"training_price_per_million_tokens": price}}


def test_api_listing_shapes() -> None:
    assert api_price_in([priced(SMALL, 0.5)], SMALL) == 0.5
    assert api_price_in({"data": [priced(SMALL, "0.55")]}, SMALL) == 0.55
    assert api_price_in(
        [{"id": SMALL, "fine_tune": {"training_price_per_million_tokens": 1}}], SMALL
    )
    # Listed under its inference id (Nebius deploys Llama-3.1-8B onto Meta-Llama-3.1-8B).
    assert api_price_in([priced("meta-llama/Meta-Llama-3.1-8B-Instruct", 0.6)], SMALL) == 0.6
    assert api_price_in([priced(SMALL.lower(), 0.7)], SMALL) == 0.7
    for unusable in (None, "free", -1, True, {"x": 1}):
        assert api_price_in([priced(SMALL, unusable)], SMALL) is None
    assert api_price_in([{"name": SMALL, "fine_tune": None}], SMALL) is None
    assert api_price_in([{"name": SMALL, "status": "active"}], SMALL) is None
    assert api_price_in([priced(LARGE, 3)], SMALL) is None
    assert api_price_in({"detail": "nope"}, SMALL) is None
    assert api_price_in(["junk", 3], SMALL) is None


@pytest.fixture
def router() -> respx.MockRouter:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


def make_client(fake_time: FakeTime, base_url: str = BASE_URL) -> NebiusClient:
    return NebiusClient(
        API_KEY,
        base_url,
        max_retries=3,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        rng=random.Random(0),
    )


async def test_the_api_price_is_preferred_and_asked_for_once(
    router: respx.MockRouter, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEBIUS_PRICE_SMALL_PER_M", "0.9")
    route = router.get(V0_MODELS).respond(json=listing(priced(SMALL, 0.45)))
    async with make_client(fake_time) as client:
        price = await client.training_price(SMALL)
        assert (price.per_million, price.source) == (0.45, "api")
        assert price.text == "$0.45 per million trained tokens (Nebius's price for this model)"
        # A model the API does not price falls back to the rule; no second request.
        other = await client.training_price(LARGE)
        assert (other.per_million, other.source) == (PUBLISHED_LARGE_PER_M, "published")
        assert (await client.training_price(SMALL)).per_million == 0.45
    assert route.call_count == 1
    assert route.calls.last.request.headers["authorization"] == f"Bearer {API_KEY}"


async def test_an_answer_without_the_field_uses_the_configured_price(
    router: respx.MockRouter, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEBIUS_PRICE_SMALL_PER_M", "0.9")
    router.get(V0_MODELS).respond(json=[{"name": f"{SMALL}-LoRa:x-AbCd", "status": "active"}])
    async with make_client(fake_time) as client:
        price = await client.training_price(SMALL)
    assert (price.per_million, price.source) == (0.9, "configured")


async def test_a_404_falls_back_and_is_not_asked_again(
    router: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = router.get(V0_MODELS).respond(404, json={"detail": "Not Found"})
    async with make_client(fake_time) as client:
        first = await client.training_price(SMALL)
        second = await client.training_price(SMALL)
    assert first == second
    assert (first.per_million, first.source) == (PUBLISHED_SMALL_PER_M, "published")
    assert route.call_count == 1


async def test_a_passing_failure_falls_back_without_waiting_and_asks_again_later(
    router: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = router.get(V0_MODELS).mock(
        side_effect=[
            httpx.Response(503, json={"error": {"message": "busy"}}),
            httpx.ConnectError("down"),
            httpx.Response(200, json=[priced(SMALL, 0.3)]),
        ]
    )
    async with make_client(fake_time) as client:
        assert (await client.training_price(SMALL)).source == "published"
        assert (await client.training_price(SMALL)).source == "published"
        assert (await client.training_price(SMALL)).per_million == 0.3
        assert (await client.training_price(SMALL)).per_million == 0.3
    # Not retried (a price never holds up a job), and not kept: the third call asked again.
    assert route.call_count == 3
    assert fake_time.sleeps == []


async def test_the_local_engine_is_free_and_asks_nothing(fake_time: FakeTime) -> None:
    with respx.mock(base_url=LOCAL_URL, assert_all_called=False) as mock:
        route = mock.route()
        async with make_client(fake_time, LOCAL_URL) as client:
            price = await client.training_price(LARGE)
    assert price.is_free and price.per_million == 0.0
    assert price.text == FREE_TEXT == "free on the local engine"
    assert not route.called


async def test_a_malformed_override_fails_the_price_with_its_name(
    router: respx.MockRouter, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEBIUS_TRAINING_PRICES", "just-a-name")
    route = router.get(V0_MODELS).respond(json=[])
    async with make_client(fake_time) as client:
        with pytest.raises(ConfigError) as info:
            await client.training_price(SMALL)
    assert "NEBIUS_TRAINING_PRICES, entry 1" in info.value.message
    assert not route.called


# ---------------------------------------------------------------------- texts


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0, "$0.00"),
        (0.354, "$0.35"),
        (1234.5, "$1,234.50"),
        (0.0048, "$0.0048"),
        (3e-5, "< $0.0001"),
    ],
)
def test_money(amount: float, text: str) -> None:
    assert format_usd(amount) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (950, "950"),
        (9_500, "9.5k"),
        (9_960, "10k"),
        (295_000, "295k"),
        (999_600, "1M"),
        (1_234_567, "1.2M"),
        (48_000_000, "48M"),
    ],
)
def test_short_token_counts(count: int, text: str) -> None:
    assert short_tokens(count) == text


def test_prices() -> None:
    assert (format_price(0.4), format_price(2.8), format_price(0.125)) == (
        "$0.40",
        "$2.80",
        "$0.125",
    )


def test_estimate_text_is_tokens_times_epochs_at_the_price() -> None:
    found = estimate(price_for(SMALL), 295_000, 3)
    assert found.tokens == 885_000
    assert found.usd == pytest.approx(0.354)
    assert found.text == (
        "≈ $0.35 (295k tokens × 3 epochs at $0.40 per million; training tokens only)"
    )
    assert estimate(price_for(LARGE), 1_000_000, 1).text == (
        "≈ $2.80 (1M tokens × 1 epoch at $2.80 per million; training tokens only)"
    )
    unknown = estimate(price_for("deepseek-ai/DeepSeek-V3"), 295_000, 2).text
    assert unknown.startswith("≈ 590k trained tokens (295k tokens × 2 epochs); price unknown:")
    assert estimate(free_price(LARGE), 295_000, 3).text == "free on the local engine"


def test_estimate_from_a_validation_report(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": a}]}
        for a in ("x" * (40 * n) for n in range(1, 21))
    ]
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = validate_file(data)
    assert report.valid and report.stats.tokens.total > 0
    found = estimate_from_report(price_for(SMALL), report, 4)
    assert found is not None
    assert (found.tokens_per_epoch, found.epochs) == (report.stats.tokens.total, 4)
    assert found.usd == pytest.approx(report.stats.tokens.total * 4 * 0.40 / 1e6)
    # A report of a validation file alone holds no trained tokens.
    alone = validate_file(data, role="validation")
    assert estimate_from_report(price_for(SMALL), alone, 4) is None


def job(**fields: object) -> Job:
    return Job.model_validate(job_json(**fields))


def test_final_cost_from_trained_tokens() -> None:
    cost = job_cost(price_for(SMALL), job(status="succeeded", trained_tokens=276_480))
    assert (cost.final, cost.extrapolated) == (True, False)
    assert cost.usd == pytest.approx(0.110592)
    assert cost.text == "$0.11 (276,480 trained tokens)"
    big = job_cost(price_for(LARGE), job(model=LARGE, status="cancelled", trained_tokens=10**6))
    assert big.text == "$2.80 (1,000,000 trained tokens)"


def test_running_cost_from_trained_tokens_with_the_rate_carried_on() -> None:
    running = job(status="running", trained_tokens=230_400, trained_steps=10, total_steps=40)
    cost = job_cost(price_for(SMALL), running)
    assert not cost.final
    assert cost.text == "$0.09 so far (230,400 trained tokens; ≈ $0.37 in all at this rate)"
    no_steps = job_cost(price_for(SMALL), job(status="running", trained_tokens=230_400))
    assert no_steps.text == "$0.09 so far (230,400 trained tokens)"


def test_running_cost_without_trained_tokens_is_extrapolated_from_the_estimate() -> None:
    planned = estimate(price_for(SMALL), 295_000, 3)
    running = job(status="running", trained_steps=12, total_steps=40)
    cost = job_cost(price_for(SMALL), running, planned.tokens)
    assert cost.extrapolated and cost.usd == pytest.approx(0.354 * 0.3)
    assert cost.text == "≈ $0.11 so far (step 12 of 40, of ≈ $0.35)"
    # Without an estimate there is nothing to scale.
    assert job_cost(price_for(SMALL), running).text == (
        "not known yet: the job reports no trained tokens"
    )


def test_cost_before_training_and_when_nothing_was_reported() -> None:
    queued = job(status="queued")
    assert job_cost(price_for(SMALL), queued, 885_000).text == (
        "nothing trained yet (≈ $0.35 expected)"
    )
    assert job_cost(price_for(SMALL), queued).text == "nothing trained yet"
    ended = job(status="failed")
    assert job_cost(price_for(SMALL), ended).text == (
        "not reported: the job gives no trained tokens"
    )
    done = job(status="succeeded", trained_steps=40, total_steps=40)
    assert job_cost(price_for(SMALL), done, 885_000).text == (
        "≈ $0.35 (estimated at step 40 of 40: the job reported no trained tokens)"
    )


def test_unknown_price_still_counts_tokens() -> None:
    cost = job_cost(price_for("deepseek-ai/DeepSeek-V3"), job(status="succeeded", trained_tokens=5))
    assert cost.usd is None
    assert cost.text.startswith("5 trained tokens; price unknown:")


def test_the_local_engine_costs_nothing() -> None:
    cost = job_cost(free_price(SMALL), job(status="succeeded", trained_tokens=276_480))
    assert (cost.usd, cost.text) == (0.0, "free on the local engine")
