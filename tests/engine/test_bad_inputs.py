"""Bad job requests: each answers a 4xx in the API's error shape naming the field, no job is
created, and the engine keeps serving."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from client.errors import RequestInfo, UnprocessableEntityError, error_from_response
from engine.model_registry import is_hub_id
from engine.server import EmbeddedEngine
from tests.engine.conftest import MODEL, Api, start_engine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedEngine]:
    root = tmp_path_factory.mktemp("bad-inputs")
    model = root / "models" / "my-model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    engine = start_engine(root / "engine", model_dirs=[root / "models"])
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def shared(server: EmbeddedEngine) -> Iterator[Api]:
    api = Api(server.base_url)
    yield api
    api.http.close()


@pytest.fixture(scope="module")
def training(shared: Api) -> str:
    return shared.processed()["id"]


def _newest_job(api: Api) -> str | None:
    jobs = api.http.get("fine_tuning/jobs", params={"limit": 1}).json()["data"]
    return jobs[0]["id"] if jobs else None


def refused(api: Api, body: Any, status: int, param: str | None) -> dict[str, Any]:
    """Posts `body`, checks the refusal's shape and that no job was made; the error object."""
    before = _newest_job(api)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = api.http.post(
        "fine_tuning/jobs", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert "Traceback" not in error["message"]
    assert _newest_job(api) == before  # no job was made, and the engine still answers
    return error


def job_body(training: str, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "training_file": training} | fields


def created(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.http.post("fine_tuning/jobs", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# Model ids


@pytest.mark.parametrize("model", ["~nosuchuser-h2/model", "~/model", "~", "~root"])
def test_a_model_id_starting_with_a_tilde_is_an_unknown_model_not_a_home_folder(
    shared: Api, training: str, model: str
) -> None:
    error = refused(shared, job_body(training, model=model), 400, "model")
    assert error["code"] == "model_not_found"
    assert f"Model '{model}' is not available" in error["message"]


def test_a_path_is_a_model_only_when_it_is_a_configured_model_folder(
    shared: Api, training: str, server: EmbeddedEngine, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "stray-model"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text("{}")
    refused(shared, job_body(training, model=str(elsewhere)), 400, "model")
    refused(shared, job_body(training, model="/etc"), 400, "model")
    configured = server.config.model_dirs[0] / "my-model"
    assert created(shared, job_body(training, model=str(configured)))["model"] == str(configured)
    assert created(shared, job_body(training, model="my-model"))["model"] == "my-model"


def test_only_hub_shaped_ids_are_taken_for_downloads(
    shared: Api, training: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for model in (
        "~someone/model",
        "org/../../etc",
        "org/name/extra",
        "org/-name",
        "a" * 90 + "/b" * 4,
    ):
        refused(shared, job_body(training, model=model), 400, "model")
    assert created(shared, job_body(training, model="org/some-model.v2"))["model"] == (
        "org/some-model.v2"
    )


def test_the_hub_id_shape() -> None:
    assert is_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert is_hub_id("meta-llama/Llama-3.1-8B")
    for bad in (
        "~user/x",
        "/abs/path",
        "a/b/c",
        "a--b/c",
        "a/..",
        "../x",
        "a/b ",
        "x",
        "a/" + "b" * 96,
    ):
        assert not is_hub_id(bad), bad


# method


@pytest.mark.parametrize(
    ("method", "param", "says"),
    [
        ({"type": ["supervised"]}, "method.type", "must be a string"),
        ({"type": {}}, "method.type", "must be a string"),
        ({"type": None}, "method.type", "required"),
        ({"supervised": {}}, "method.type", "required"),
        ({"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}, "method.type", "'dpo'"),
        ({"type": "supervised", "supervised": []}, "method.supervised", "object"),
        (
            {"type": "supervised", "supervised": {"hyperparameters": [1]}},
            "method.supervised.hyperparameters",
            "object",
        ),
        (
            {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 99}}},
            "method.supervised.hyperparameters.n_epochs",
            "must be in [1, 20] (got 99)",
        ),
    ],
)
def test_a_malformed_method_is_refused_naming_the_field(
    shared: Api, training: str, method: dict[str, Any], param: str, says: str
) -> None:
    error = refused(shared, job_body(training, method=method), 422, param)
    assert says in error["message"]


def test_hyperparameters_in_method_supervised_are_used(shared: Api, training: str) -> None:
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    assert created(shared, job_body(training, method=method))["hyperparameters"]["n_epochs"] == 2


def test_method_and_hyperparameters_together_are_refused_naming_both(
    shared: Api, training: str
) -> None:
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    body = job_body(training, method=method, hyperparameters={"n_epochs": 4})
    error = refused(shared, body, 400, "method")
    assert "'method' and 'hyperparameters' cannot both be given" in error["message"]


# The JSON body


def test_a_body_nested_thousands_of_levels_deep_is_a_400(shared: Api) -> None:
    deep = b'{"model": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    error = refused(shared, deep, 400, None)
    assert "nests more than 32 levels" in error["message"]
    # Deep enough to refuse, though Python's parser would read it.
    nested: Any = []
    for _ in range(40):
        nested = [nested]
    refused(shared, json.dumps({"integrations": [{"type": "x", "x": nested}]}).encode(), 400, None)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(shared: Api, training: str, constant: str) -> None:
    body = json.dumps(job_body(training, integrations=[{"type": "other", "weight": 0}]))
    body = body.replace('"weight": 0', f'"weight": {constant}')
    error = refused(shared, body.encode(), 400, None)
    assert "not valid JSON" in error["message"]


# Ranges


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "n_epochs",
            1_000_000,
            "Invalid hyperparameter 'n_epochs': must be in [1, 20] (got 1000000).",
        ),
        (
            "batch_size",
            1e9,
            "Invalid hyperparameter 'batch_size': must be in [1, 64] (got 1000000000).",
        ),
        (
            "learning_rate",
            1e9,
            "Invalid hyperparameter 'learning_rate': must be in (0, 1] (got 1000000000).",
        ),
        (
            "context_length",
            1e12,
            "Invalid hyperparameter 'context_length': must be in [8, 131072] (got 1000000000000).",
        ),
        ("lora_r", 1e9, "Invalid hyperparameter 'lora_r': must be in [1, 128] (got 1000000000)."),
    ],
)
def test_absurd_hyperparameters_are_refused_at_creation_with_the_allowed_range(
    shared: Api, training: str, field: str, value: float, message: str
) -> None:
    error = refused(
        shared, job_body(training, hyperparameters={field: value}), 422, f"hyperparameters.{field}"
    )
    assert error["message"] == message
    assert error["code"] == "invalid_hyperparameter"


@pytest.mark.parametrize("seed", [10**26, -1, 2**31])
def test_a_seed_outside_what_the_trainer_takes_is_refused_at_creation(
    shared: Api, training: str, seed: int
) -> None:
    error = refused(shared, job_body(training, seed=seed), 422, "seed")
    assert error["message"] == f"Invalid value for 'seed': must be in [0, 2147483647] (got {seed})."
    assert created(shared, job_body(training, seed=2**31 - 1))["seed"] == 2**31 - 1


def test_a_suffix_over_64_characters_is_refused(shared: Api, training: str) -> None:
    error = refused(shared, job_body(training, suffix="s" * 65), 422, "suffix")
    assert "64 characters" in error["message"]


def test_the_client_reads_a_range_refusal_as_a_typed_error_naming_the_field(
    shared: Api, training: str
) -> None:
    body = job_body(training, hyperparameters={"n_epochs": 1_000_000})
    response = shared.http.post("fine_tuning/jobs", json=body)
    request = RequestInfo.build("POST", str(response.request.url), json_body=body)
    error = error_from_response(response, request)
    assert isinstance(error, UnprocessableEntityError)
    assert error.param == "hyperparameters.n_epochs"
    assert error.code == "invalid_hyperparameter"
    assert error.message == "Invalid hyperparameter 'n_epochs': must be in [1, 20] (got 1000000)."


# learning_rate_multiplier


@pytest.mark.parametrize(
    ("given", "rate"),
    [
        ({"learning_rate_multiplier": 2}, 2e-5),
        ({"learning_rate_multiplier": 0.5}, 5e-6),
        ({"learning_rate_multiplier": "auto"}, 1e-5),
        ({"learning_rate_multiplier": 100_000}, 1.0),
    ],
)
def test_learning_rate_multiplier_scales_the_default_learning_rate(
    shared: Api, training: str, given: dict[str, Any], rate: float
) -> None:
    job = created(shared, job_body(training, hyperparameters=given))
    assert job["hyperparameters"]["learning_rate"] == pytest.approx(rate, rel=1e-12)
    method = {"type": "supervised", "supervised": {"hyperparameters": given}}
    job = created(shared, job_body(training, method=method))
    assert job["hyperparameters"]["learning_rate"] == pytest.approx(rate, rel=1e-12)


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"learning_rate_multiplier": 1e9}, "must be in (0, 100000] (got 1000000000)"),
        ({"learning_rate_multiplier": 0}, "must be in (0, 100000] (got 0)"),
        ({"learning_rate_multiplier": 10**400}, "must be in (0, 100000]"),
        ({"learning_rate_multiplier": "fast"}, "must be a number in (0, 100000] or 'auto'"),
        ({"learning_rate_multiplier": True}, "must be a number"),
        ({"learning_rate_multiplier": 2, "learning_rate": 1e-4}, "or 'learning_rate', not both"),
    ],
)
def test_a_bad_learning_rate_multiplier_is_refused(
    shared: Api, training: str, given: dict[str, Any], says: str
) -> None:
    body = job_body(training, hyperparameters=given)
    error = refused(shared, body, 422, "hyperparameters.learning_rate_multiplier")
    assert says in error["message"]


def test_the_openai_sdk_can_send_its_typed_learning_rate_multiplier(
    server: EmbeddedEngine, training: str
) -> None:
    with OpenAI(base_url=server.base_url, api_key="unused", max_retries=0) as sdk:
        job = sdk.fine_tuning.jobs.create(
            model=MODEL,
            training_file=training,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"learning_rate_multiplier": 3, "n_epochs": 1}},
            },
        )
    assert job.hyperparameters.n_epochs == 1
    assert job.to_dict()["hyperparameters"]["learning_rate"] == pytest.approx(3e-5)
