"""Errors carry status, Nebius's message whatever the body shape, the raw body, what was sent
(with secrets redacted) and a troubleshooting hint."""

import json
import logging

import httpx
import pytest
import respx

from client import (
    AuthenticationError,
    BadRequestError,
    NebiusClient,
    NebiusError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
)
from client.errors import extract_error
from tests.client.conftest import API_KEY

BODY_SHAPES = [
    (
        {"error": {"message": "Model not found", "type": "invalid", "param": "model"}},
        "Model not found",
    ),
    ({"error": "plain error string"}, "plain error string"),
    ({"detail": "Not authenticated"}, "Not authenticated"),
    (
        {"detail": [{"loc": ["body", "hyperparameters", "n_epochs"], "msg": "too big"}]},
        "hyperparameters.n_epochs: too big",
    ),
    ({"message": "Something broke"}, "Something broke"),
]


@pytest.mark.parametrize(("body", "message"), BODY_SHAPES)
async def test_message_is_taken_from_every_body_shape(
    client: NebiusClient, api: respx.MockRouter, body: dict, message: str
) -> None:
    api.get("models").respond(400, json=body)
    with pytest.raises(BadRequestError) as info:
        await client.list_models()
    assert info.value.message == message
    assert info.value.status_code == 400
    assert json.loads(info.value.body or "") == body  # the raw body is kept as it came


async def test_plain_text_and_empty_bodies(client: NebiusClient, api: respx.MockRouter) -> None:
    api.get("files/a").respond(404, text="no such file")
    api.get("files/b").respond(404)
    with pytest.raises(NotFoundError) as info:
        await client.retrieve_file("a")
    assert info.value.message == "no such file"
    with pytest.raises(NotFoundError) as info:
        await client.retrieve_file("b")
    assert info.value.message == "Not Found"  # the reason phrase when the body says nothing


def test_error_code_and_param_are_kept() -> None:
    assert extract_error('{"error":{"message":"m","code":"c","param":"p"}}') == ("m", "c", "p")


@pytest.mark.parametrize(
    ("status", "cls", "hint_word"),
    [
        (401, AuthenticationError, "NEBIUS_API_KEY"),
        (400, BadRequestError, "model name"),
        (422, UnprocessableEntityError, "JSONL"),
        (404, NotFoundError, "id"),
        (413, PayloadTooLargeError, "too large"),
    ],
)
async def test_common_statuses_have_their_class_and_hint(
    client: NebiusClient, api: respx.MockRouter, status: int, cls: type, hint_word: str
) -> None:
    from client import JobRequest

    api.post("fine_tuning/jobs").respond(status, json={"error": {"message": "nope"}})
    with pytest.raises(cls) as info:
        await client.create_job(JobRequest(model="m", training_file="file-1"))
    assert isinstance(info.value, NebiusError)
    assert hint_word in (info.value.hint or "")
    assert info.value.request is not None
    assert info.value.request.method == "POST"
    assert info.value.request.url == "https://nebius.test/v1/fine_tuning/jobs"
    assert info.value.request.json["training_file"] == "file-1"


async def test_four_hundreds_are_not_retried(client: NebiusClient, api: respx.MockRouter) -> None:
    route = api.get("models").respond(401, json={"detail": "Invalid API key"})
    with pytest.raises(AuthenticationError):
        await client.list_models()
    assert route.call_count == 1


async def test_secrets_are_redacted_from_request_body_and_echoed_text(
    client: NebiusClient, api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    from client import Hyperparameters, JobRequest, WandbIntegration, WandbSettings

    # A server that echoes the Authorization header and the request back in its error.
    api.post("fine_tuning/jobs").respond(
        422, json={"detail": f"bad request from Bearer {API_KEY}, wandb key wb-SECRET-999"}
    )
    request = JobRequest(
        model="m",
        training_file="file-1",
        hyperparameters=Hyperparameters(),
        integrations=[WandbIntegration(wandb=WandbSettings(project="p", api_key="wb-SECRET-999"))],
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UnprocessableEntityError) as info:
        await client.create_job(request)
    error = info.value
    assert error.request is not None
    assert error.request.json["integrations"][0]["wandb"]["api_key"] == "***"
    assert error.request.json["model"] == "m"  # what was sent is kept otherwise
    everything = " ".join(
        [str(error), error.message, error.body or "", repr(error.to_dict()), caplog.text]
    )
    assert API_KEY not in everything
    assert "Bearer ***" in error.body


async def test_server_error_after_retries_keeps_status(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.get("files").respond(503, text="upstream unavailable")
    with pytest.raises(ServerError) as info:
        await client.list_files()
    assert info.value.status_code == 503
    assert "temporary" in (info.value.hint or "")


async def test_rate_limit_error_carries_retry_after(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.get("models").respond(429, headers={"Retry-After": "7"}, json={"error": "slow down"})
    with pytest.raises(RateLimitError) as info:
        await client.list_models()
    assert info.value.retry_after == 7.0


async def test_retry_logs_never_contain_the_key(
    client: NebiusClient, api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api.get("models").mock(
        side_effect=[httpx.ConnectError(f"refused for {API_KEY}"), httpx.Response(200, json=[])]
    )
    await client.list_models()
    assert "retry 1/3" in caplog.text
    assert API_KEY not in caplog.text


@pytest.mark.parametrize(
    ("message", "not_ready"),
    [
        ("Training file file-1 is not ready yet", True),
        ("file has not been processed yet", True),
        ("File file-1 is still being processed", True),
        ("file-1: file is not processed", True),
        ("model 'x' not found", False),
        ("invalid JSONL at line 3", False),
        (None, False),
    ],
)
def test_file_not_ready_messages_are_recognised(message: str | None, not_ready: bool) -> None:
    from client.errors import is_not_ready_message

    assert is_not_ready_message(message) is not_ready


async def test_request_parameters_are_kept(client: NebiusClient, api: respx.MockRouter) -> None:
    api.get("fine_tuning/jobs").respond(400, json={"error": {"message": "bad limit"}})
    with pytest.raises(BadRequestError) as info:
        await client.list_jobs(after="ftjob-3", limit=1000)
    assert info.value.request is not None
    assert info.value.request.params == {"after": "ftjob-3", "limit": 1000}


async def test_bad_request_hint_fits_the_call(client: NebiusClient, api: respx.MockRouter) -> None:
    api.post("fine_tuning/jobs/j/cancel").respond(
        400, json={"error": {"message": "Job 'j' has already failed and cannot be cancelled."}}
    )
    with pytest.raises(BadRequestError) as info:
        await client.cancel_job("j")
    assert "model name" not in (info.value.hint or "")
    assert info.value.message.startswith("Job 'j' has already failed")


# Nebius answers a refused request the FastAPI way (its OpenAPI schema: HTTPValidationError).
FASTAPI_422 = {
    "detail": [
        {
            "type": "less_than_equal",
            "loc": ["body", "hyperparameters", "n_epochs"],
            "msg": "Input should be less than or equal to 20",
            "input": 100,
            "ctx": {"le": 20},
        },
        {
            "type": "enum",
            "loc": ["body", "model"],
            "msg": "value is not a valid enumeration member",
            "input": "meta-llama/Nope",
        },
    ]
}


async def test_a_fastapi_422_is_told_in_words_naming_each_field(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    from client import JobRequest

    api.post("fine_tuning/jobs").respond(422, json=FASTAPI_422)
    with pytest.raises(UnprocessableEntityError) as info:
        await client.create_job(JobRequest(model="m", training_file="file-1"))
    error = info.value
    assert error.message == (
        "hyperparameters.n_epochs: Input should be less than or equal to 20 (got 100); "
        "model: value is not a valid enumeration member"
    )
    assert error.param == "hyperparameters.n_epochs"
    assert str(error).startswith("422 hyperparameters.n_epochs: Input should be")
    assert json.loads(error.body or "") == FASTAPI_422  # the raw body is still kept


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"detail": "Fine-tuning job ftjob-0 not found"}, "Fine-tuning job ftjob-0 not found"),
        ({"detail": [{"loc": ["query", "limit"], "msg": "bad", "type": "x"}]}, "limit: bad"),
        ({"detail": [{"loc": [], "msg": "Invalid JSON", "type": "json_invalid"}]}, "Invalid JSON"),
        ({"detail": {"message": "quota exceeded"}}, "quota exceeded"),
        ({"detail": []}, "Unprocessable Entity"),  # says nothing: the reason phrase
        ({"detail": None}, "Unprocessable Entity"),
        ({"error": {"detail": [{"loc": ["body", "seed"], "msg": "bad seed"}]}}, "seed: bad seed"),
    ],
)
async def test_every_detail_shape_becomes_words(
    client: NebiusClient, api: respx.MockRouter, body: dict, message: str
) -> None:
    api.get("models").respond(422, json=body)
    with pytest.raises(UnprocessableEntityError) as info:
        await client.list_models()
    assert info.value.message == message
    assert "{" not in info.value.message and "[" not in info.value.message


def test_a_validation_error_never_echoes_a_non_numeric_input() -> None:
    """FastAPI puts the whole request body in `input` for a missing field: secrets included."""
    body = {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "training_file"],
                "msg": "Field required",
                "input": {"model": "m", "integrations": [{"wandb": {"api_key": "wb-SECRET"}}]},
            }
        ]
    }
    message, _, param = extract_error(json.dumps(body))
    assert message == "training_file: Field required"
    assert param == "training_file"
