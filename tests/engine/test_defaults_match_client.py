"""The engine's hyperparameter defaults (engine.training.spec) equal the client's
(client.hyperparameters): a job sent without a value trains with the one the client shows.

Both are Nebius's published defaults (SupervisedHParameters). The engine builds its own models
on the client's fields and ranges (it may import the client's pure modules, never the other way
round); these tests hold what a user notices: the client's check before uploading and the
engine's check of the request agree on every bound.
"""

import pytest

from client.hyperparameters import LOCAL_ENGINE, LOCAL_ENGINE_RANGES, HyperparameterError
from client.hyperparameters import Hyperparameters as ClientHyperparameters
from client.hyperparameters import JobRequest as ClientJobRequest
from engine.errors import ApiError
from engine.jobs import parse_hyperparameters, parse_request
from engine.training.spec import Hyperparameters as EngineHyperparameters


def _defaults(model: type) -> dict[str, tuple[object, object]]:
    return {name: (f.annotation, f.default) for name, f in model.model_fields.items()}


def test_every_hyperparameter_has_the_same_type_and_default_on_both_sides() -> None:
    assert _defaults(EngineHyperparameters) == _defaults(ClientHyperparameters)


def test_a_job_sent_without_hyperparameters_trains_with_the_defaults_the_client_shows() -> None:
    request = parse_request({"model": "tiny-llama", "training_file": "file-1"})
    assert parse_hyperparameters(request).model_dump() == ClientHyperparameters().model_dump()


def test_the_clients_default_request_reaches_the_engine_unchanged() -> None:
    body = ClientJobRequest(model="tiny-llama", training_file="file-1").to_body()
    engine = parse_hyperparameters(parse_request(body))
    assert engine.model_dump() == body["hyperparameters"]


def _fields(name: str, value: float) -> dict[str, object]:
    """A job request with one value set (the seed sits beside the hyperparameters)."""
    where = {"seed": value} if name == "seed" else {"hyperparameters": {name: value}}
    return {"model": "tiny-llama", "training_file": "file-1", **where}


def _engine_check(name: str, value: float) -> None:
    parse_hyperparameters(parse_request(_fields(name, value)))


def _edges(name: str) -> tuple[list[float], list[float]]:
    """Values on each side of the field's bounds in LOCAL_ENGINE_RANGES: (allowed, refused)."""
    low, high, low_inclusive, high_inclusive = LOCAL_ENGINE_RANGES[name]
    step = 1 if isinstance(low, int) and isinstance(high, int) else 0.001
    bounds = ((low, low_inclusive), (high, high_inclusive))
    allowed = [value for value, inclusive in bounds if inclusive]
    refused = [low - step, high + step, *(value for value, inclusive in bounds if not inclusive)]
    return allowed or [(low + high) / 2], refused


@pytest.mark.parametrize("name", sorted(LOCAL_ENGINE_RANGES))
def test_the_engine_and_the_clients_check_agree_on_every_bound(name: str) -> None:
    allowed, refused = _edges(name)
    for value in allowed:
        ClientJobRequest.build(LOCAL_ENGINE, **_fields(name, value))
        _engine_check(name, value)
    for value in refused:
        with pytest.raises(HyperparameterError):
            ClientJobRequest.build(LOCAL_ENGINE, **_fields(name, value))
        with pytest.raises(ApiError) as refusal:
            _engine_check(name, value)
        assert refusal.value.status in (400, 422) and name in refusal.value.message
