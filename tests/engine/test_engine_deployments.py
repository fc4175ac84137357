"""`/v0/models`: a LoRA checkpoint deployed, validated, chatted with, listed and deleted."""

import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from engine.server import EmbeddedEngine
from engine.store import Store
from tests.engine.conftest import HELLO, TINY, Api, lora_job, serving, start_engine, wait_for


def v0(engine: EmbeddedEngine) -> httpx.Client:
    """A client for the engine's root: /v0 lies outside the /v1 base path."""
    return httpx.Client(base_url=engine.base_url.removesuffix("/v1"), timeout=30)


def settled(client: httpx.Client, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: (d := client.get(f"/v0/models/{name}").json()).get("status") != "validating" and d,
        f"deployment {name} to finish validating",
    )


def deploy(client: httpx.Client, job: dict[str, Any], **body: Any) -> httpx.Response:
    body.setdefault("name", "demo")
    body.setdefault("base_model", TINY)
    body.setdefault("source", job["id"])
    body.setdefault("description", "a test deployment")
    return client.post("/v0/models", json=body)


def greedy(sdk: OpenAI, model: str) -> str:
    answer = sdk.chat.completions.create(model=model, messages=HELLO, temperature=0, max_tokens=8)
    return answer.choices[0].message.content


def test_a_checkpoint_deploys_validates_answers_lists_and_deletes(
    chat_engine: EmbeddedEngine, chat_api: Api, engine_dir: Path, tiny_model: Path
) -> None:
    job = lora_job(chat_api, engine_dir, tiny_model)
    checkpoints = chat_api.http.get(f"fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    first = min(checkpoints, key=lambda c: c["step_number"])
    with v0(chat_engine) as client, OpenAI(base_url=chat_engine.base_url, api_key="x") as sdk:
        created = deploy(client, job, source=f"{job['id']}:{first['id']}")
        assert created.status_code == 200, created.text
        doc = created.json()
        assert re.fullmatch(rf"{TINY}-LoRa:demo-[a-z0-9]{{4}}", doc["name"])
        assert doc["status"] == "validating"
        assert doc["source"] == f"{job['id']}:{first['id']}"
        assert doc["base_model"] == TINY and doc["description"] == "a test deployment"

        active = settled(client, doc["name"])
        assert active["status"] == "active" and active["status_reason"] is None
        assert client.get("/v0/models").json() == [active]
        assert doc["name"] in [m.id for m in sdk.models.list()]

        # The deployment answers as the checkpoint it was made from, not as the base.
        answer = greedy(sdk, doc["name"])
        assert answer == greedy(sdk, first["fine_tuned_model_checkpoint"])
        assert answer != greedy(sdk, TINY)

        deleted = client.delete(f"/v0/models/{doc['name']}")
        assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
        gone = client.get(f"/v0/models/{doc['name']}")
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "model_not_found"
        assert client.delete(f"/v0/models/{doc['name']}").status_code == 404
        assert client.get("/v0/models").json() == []
        with pytest.raises(openai.NotFoundError):
            greedy(sdk, doc["name"])


def test_a_job_id_alone_deploys_its_last_checkpoint_under_a_fresh_name(
    chat_engine: EmbeddedEngine, chat_api: Api, engine_dir: Path, tiny_model: Path
) -> None:
    job = lora_job(chat_api, engine_dir, tiny_model)
    checkpoints = chat_api.http.get(f"fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    last = max(checkpoints, key=lambda c: c["step_number"])
    with v0(chat_engine) as client:
        one, two = deploy(client, job).json(), deploy(client, job).json()
        assert one["checkpoint_id"] == last["id"] and one["job_id"] == job["id"]
        assert one["name"] != two["name"]
        assert [d["name"] for d in client.get("/v0/models").json()] == [one["name"], two["name"]]


def test_an_adapter_that_cannot_be_loaded_ends_in_error_with_a_reason(
    chat_engine: EmbeddedEngine, chat_api: Api
) -> None:
    # The fake worker's checkpoint files are not a real adapter.
    created = chat_api.create_job(
        model=TINY, training_file=chat_api.processed()["id"], hyperparameters={"lora": True}
    ).json()
    job = chat_api.wait_status(created["id"], "succeeded")
    with v0(chat_engine) as client, OpenAI(base_url=chat_engine.base_url, api_key="x") as sdk:
        name = deploy(client, job).json()["name"]
        failed = settled(client, name)
        assert failed["status"] == "error"
        assert failed["status_reason"].startswith("The adapter could not be loaded")
        assert "LoRA adapter in step-6" in failed["status_reason"]
        with pytest.raises(openai.BadRequestError) as caught:
            greedy(sdk, name)
        assert "failed validation" in caught.value.message


def test_a_full_fine_tune_is_refused_with_the_model_to_chat_with_instead(
    chat_engine: EmbeddedEngine, chat_api: Api
) -> None:
    created = chat_api.create_job(
        model=TINY, training_file=chat_api.processed()["id"], hyperparameters={"lora": False}
    ).json()
    job = chat_api.wait_status(created["id"], "succeeded")
    with v0(chat_engine) as client:
        response = deploy(client, job)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "not_lora" and error["param"] == "source"
    assert job["fine_tuned_model"] in error["message"]


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"source": "ftjob-nothing"}, "source", "no fine-tuning job"),
        ({"source": "{job}:ftckpt-nothing"}, "source", "no checkpoint 'ftckpt-nothing'"),
        ({"base_model": "other/model"}, "base_model", f"trained its adapter on {TINY}"),
        ({"name": "has/slash"}, "name", "letters, digits"),
        ({"name": ""}, "name", "at least 1"),
        ({"name": "x" * 65}, "name", "at most 64"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(
    chat_engine: EmbeddedEngine, chat_api: Api, change: dict[str, Any], param: str, words: str
) -> None:
    created = chat_api.create_job(
        model=TINY, training_file=chat_api.processed()["id"], hyperparameters={"lora": True}
    ).json()
    job = chat_api.wait_status(created["id"], "succeeded")
    if "source" in change:
        change = {"source": change["source"].format(job=job["id"])}
    with v0(chat_engine) as client:
        response = deploy(client, job, **change)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
        assert words in response.json()["error"]["message"]
        assert client.get("/v0/models").json() == []


def test_deployments_survive_a_restart_and_one_left_validating_is_validated_again(
    engine_dir: Path, tiny_model: Path
) -> None:
    server = start_engine(engine_dir, **serving(tiny_model))
    try:
        with Api(server.base_url) as api:
            job = lora_job(api, engine_dir, tiny_model)
        with v0(server) as client:
            kept = settled(client, deploy(client, job, name="kept").json()["name"])
            pending = settled(client, deploy(client, job, name="pending").json()["name"])
    finally:
        server.stop()
    # As if the engine had stopped before this one's validation finished.
    store = Store(engine_dir / "engine.db")
    store.update_deployment(pending["name"], {"status": "validating"})
    store.close()

    server = start_engine(engine_dir, **serving(tiny_model))
    try:
        with v0(server) as client, OpenAI(base_url=server.base_url, api_key="x") as sdk:
            assert client.get(f"/v0/models/{kept['name']}").json() == kept
            assert settled(client, pending["name"])["status"] == "active"
            assert greedy(sdk, kept["name"]) == greedy(sdk, job["fine_tuned_model"])
    finally:
        server.stop()
