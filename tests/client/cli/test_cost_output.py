"""What `finetune create` and `finetune status` say about cost: the estimate on stderr after
validation and before any upload, the cost line of a job, free on the local engine, and a
malformed price setting stopped before anything is uploaded."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from client.cost import estimate, price_for
from client.validation import validate_file
from tests.client.cli.conftest import create_args, run
from tests.client.conftest import LOCAL_URL, file_json, job_json

SMALL = "meta-llama/Llama-3.1-8B-Instruct"
LARGE = "meta-llama/Llama-3.3-70B-Instruct"


def training_path(samples_dir: Path) -> Path:
    return samples_dir / "sample_training_data.jsonl"


def expected_estimate(samples_dir: Path, model: str, epochs: int, **price: float) -> str:
    """The text for the sample file, from the validator's own token count."""
    tokens = validate_file(training_path(samples_dir)).stats.tokens.total
    api_price = price.get("api")
    return estimate(price_for(model, api_price=api_price), tokens, epochs).text


def mock_upload_and_create(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], seen: list[str]
) -> respx.Route:
    """Uploads that note what stderr held when the first byte went out."""

    def upload(request: httpx.Request) -> httpx.Response:
        seen.append(capsys.readouterr().err)
        return httpx.Response(200, json=file_json("file-t", status="processed"))

    api.get("files/file-t").respond(json=file_json("file-t", status="processed"))
    api.post("fine_tuning/jobs").respond(json=job_json("ftjob-7", status="queued"))
    return api.post("files").mock(side_effect=upload)


def test_create_prints_the_estimate_after_validation_and_before_uploading(
    api: respx.MockRouter,
    prices: respx.Route,
    capsys: pytest.CaptureFixture[str],
    samples_dir: Path,
) -> None:
    seen: list[str] = []
    upload = mock_upload_and_create(api, capsys, seen)
    code, out, err = run(capsys, *create_args(samples_dir, "--n-epochs", "2", model=SMALL))
    assert code == 0, err
    assert out.strip() == "ftjob-7"
    assert upload.call_count == 1 and prices.call_count == 1
    before_upload = seen[0]
    text = expected_estimate(samples_dir, SMALL, 2)
    assert f"cost estimate: {text}\n" in before_upload
    assert "× 2 epochs at $0.40 per million; training tokens only)" in text
    assert before_upload.index("valid (chat format)") < before_upload.index("cost estimate:")


def test_create_estimates_with_the_api_price_and_the_large_band(
    api: respx.MockRouter,
    prices: respx.Route,
    capsys: pytest.CaptureFixture[str],
    samples_dir: Path,
) -> None:
    seen: list[str] = []
    mock_upload_and_create(api, capsys, seen)
    prices.respond(json=[{"name": SMALL, "fine_tune": {"training_price_per_million_tokens": 0.55}}])
    for model, epochs, price in ((SMALL, 3, {"api": 0.55}), (LARGE, 1, {})):
        seen.clear()
        argv = create_args(samples_dir, "--n-epochs", str(epochs), model=model)
        code, _, err = run(capsys, *argv)
        assert code == 0, err
        assert f"cost estimate: {expected_estimate(samples_dir, model, epochs, **price)}" in seen[0]
    assert "at $0.55 per million" in expected_estimate(samples_dir, SMALL, 3, api=0.55)
    assert "× 1 epoch at $2.80 per million" in expected_estimate(samples_dir, LARGE, 1)


def test_create_with_a_remote_training_file_says_there_is_no_estimate(
    api: respx.MockRouter, prices: respx.Route, capsys: pytest.CaptureFixture[str]
) -> None:
    api.post("fine_tuning/jobs").respond(json=job_json("ftjob-8", status="queued"))
    code, _, err = run(capsys, "create", "--model", SMALL, "--training-file", "file-abc")
    assert code == 0, err
    assert "cost estimate: none: the training file was not checked here" in err


def test_create_json_keeps_stderr_and_stdout_clean(
    api: respx.MockRouter,
    prices: respx.Route,
    capsys: pytest.CaptureFixture[str],
    samples_dir: Path,
) -> None:
    mock_upload_and_create(api, capsys, [])
    code, out, err = run(capsys, *create_args(samples_dir, "--json", model=SMALL))
    assert code == 0, err
    assert json.loads(out)["id"] == "ftjob-7"
    assert "cost estimate" not in err and not prices.called


def test_a_malformed_price_setting_stops_create_before_any_upload(
    api: respx.MockRouter,
    prices: respx.Route,
    capsys: pytest.CaptureFixture[str],
    samples_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEBIUS_PRICE_SMALL_PER_M", "forty cents")
    upload = mock_upload_and_create(api, capsys, [])
    code, _, err = run(capsys, *create_args(samples_dir, model=SMALL))
    assert code == 2
    assert "error: NEBIUS_PRICE_SMALL_PER_M: 'forty cents' is not a price" in err
    assert not upload.called


@pytest.mark.parametrize("base_url", [LOCAL_URL])
def test_create_on_the_local_engine_is_free(
    api: respx.MockRouter,
    prices: respx.Route,
    capsys: pytest.CaptureFixture[str],
    samples_dir: Path,
) -> None:
    seen: list[str] = []
    mock_upload_and_create(api, capsys, seen)
    code, _, err = run(capsys, *create_args(samples_dir, model="Qwen/Qwen3-0.6B"))
    assert code == 0, err
    assert "cost estimate: free on the local engine\n" in seen[0]
    assert not prices.called


@pytest.mark.parametrize(
    ("job", "line"),
    [
        (
            {"status": "succeeded", "trained_tokens": 276_480},
            "cost:             $0.11 (276,480 trained tokens)",
        ),
        (
            {
                "status": "running",
                "trained_tokens": 230_400,
                "trained_steps": 10,
                "total_steps": 40,
            },
            "cost:             $0.09 so far (230,400 trained tokens; ≈ $0.37 in all at this rate)",
        ),
        ({"status": "queued"}, "cost:             nothing trained yet"),
        (
            {"status": "succeeded", "model": LARGE, "trained_tokens": 1_000_000},
            "cost:             $2.80 (1,000,000 trained tokens)",
        ),
    ],
)
def test_status_shows_the_cost(
    api: respx.MockRouter,
    prices: respx.Route,
    capsys: pytest.CaptureFixture[str],
    job: dict[str, object],
    line: str,
) -> None:
    api.get("fine_tuning/jobs/ftjob-1").respond(json=job_json(**job))
    code, out, err = run(capsys, "status", "ftjob-1")
    assert code == 0, err
    lines = out.splitlines()
    assert line in lines
    # Right under the trained tokens it comes from.
    assert lines.index(line) == next(i for i, s in enumerate(lines) if s.startswith("trained")) + 1


def test_status_with_the_api_price_and_an_unknown_size(
    api: respx.MockRouter, prices: respx.Route, capsys: pytest.CaptureFixture[str]
) -> None:
    prices.respond(json=[{"name": SMALL, "fine_tune": {"training_price_per_million_tokens": 1}}])
    api.get("fine_tuning/jobs/ftjob-1").respond(
        json=job_json(status="succeeded", trained_tokens=500_000)
    )
    api.get("fine_tuning/jobs/ftjob-2").respond(
        json=job_json("ftjob-2", model="deepseek-ai/DeepSeek-V3", status="failed", trained_tokens=7)
    )
    _, out, _ = run(capsys, "status", "ftjob-1")
    assert "cost:             $0.50 (500,000 trained tokens)" in out
    _, out, _ = run(capsys, "status", "ftjob-2")
    assert "cost:             7 trained tokens; price unknown: the id" in out
    assert "NEBIUS_TRAINING_PRICES='deepseek-ai/DeepSeek-V3=PRICE'" in out


def test_status_json_is_the_job_as_answered(
    api: respx.MockRouter, prices: respx.Route, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("fine_tuning/jobs/ftjob-1").respond(json=job_json(trained_tokens=5))
    code, out, _ = run(capsys, "status", "ftjob-1", "--json")
    assert code == 0 and "cost" not in json.loads(out)
    assert not prices.called


@pytest.mark.parametrize("base_url", [LOCAL_URL])
def test_status_on_the_local_engine_is_free(
    api: respx.MockRouter, prices: respx.Route, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("fine_tuning/jobs/ftjob-1").respond(
        json=job_json(status="succeeded", trained_tokens=276_480)
    )
    _, out, _ = run(capsys, "status", "ftjob-1")
    assert "cost:             free on the local engine" in out
    assert not prices.called
