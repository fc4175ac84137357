"""The engine's hyperparameter defaults (engine.training.spec) equal the client's
(client.hyperparameters): a job sent without a value trains with the one the client shows.

Both are Nebius's published defaults (SupervisedHParameters); each side keeps its own copy
because the client must not import the engine. This test is what keeps them together.
"""

from client.hyperparameters import Hyperparameters as ClientHyperparameters
from client.hyperparameters import JobRequest as ClientJobRequest
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
