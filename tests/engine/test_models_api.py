"""`GET /v1/models/{id}`: every listed model is served by its id, slashes and all."""

import openai
import pytest
from openai import OpenAI

from engine.server import EmbeddedEngine
from tests.engine.conftest import MODEL, Api


def test_each_listed_model_is_served_by_its_id(api: Api) -> None:
    listed = api.http.get("models").json()["data"]
    assert MODEL in [m["id"] for m in listed]
    for model in listed:
        response = api.http.get(f"models/{model['id']}")
        assert response.status_code == 200, response.text
        assert response.json() == model


def test_a_fine_tuned_model_is_served_once_its_job_succeeds(api: Api) -> None:
    job = api.create_job(training_file=api.processed()["id"], hyperparameters={"n_epochs": 1})
    done = api.wait_status(job.json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    response = api.http.get(f"models/{done['fine_tuned_model']}")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == done["fine_tuned_model"]
    assert response.json()["owned_by"] == "engine"


def test_checkpoint_models_are_listed_with_their_job_not_among_the_models(api: Api) -> None:
    job = api.create_job(training_file=api.processed()["id"], hyperparameters={"n_epochs": 2})
    done = api.wait_status(job.json()["id"], "succeeded")
    listed = [m["id"] for m in api.http.get("models").json()["data"]]
    assert done["fine_tuned_model"] in listed
    checkpoints = api.http.get(f"fine_tuning/jobs/{done['id']}/checkpoints").json()["data"]
    names = [c["fine_tuned_model_checkpoint"] for c in checkpoints]
    assert len(names) == 2 and not set(names) & set(listed)


def test_an_unknown_model_is_a_404_in_the_error_shape(api: Api) -> None:
    response = api.http.get("models/nobody/nothing")
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "not_found"
    assert error["param"] == "model"
    assert "'nobody/nothing'" in error["message"]


def test_the_openai_sdk_retrieves_a_model_whose_id_has_a_slash(engine: EmbeddedEngine) -> None:
    # The SDK percent-encodes the slash (`HuggingFaceTB%2FSmolLM2-135M-Instruct`).
    with OpenAI(base_url=engine.base_url, api_key="unused", max_retries=0) as sdk:
        model = sdk.models.retrieve(MODEL)
        assert model.id == MODEL
        assert model.object == "model"
        with pytest.raises(openai.NotFoundError) as caught:
            sdk.models.retrieve("nobody/nothing")
    assert "nobody/nothing" in caught.value.message
