"""A succeeded job's fine-tuned model as the model of a new job: checks, lineage, the spec."""

import json
from pathlib import Path
from typing import Any

from tests.engine.conftest import MODEL, Api, start_engine


def finished(api: Api, model: str = MODEL, lora: bool = True, **body: Any) -> dict[str, Any]:
    """A job on `model` run to success (the fake worker: 2 steps per epoch, one epoch)."""
    created = api.create_job(
        model=model,
        training_file=api.processed()["id"],
        hyperparameters={"n_epochs": 1, "lora": lora},
        **body,
    )
    assert created.status_code == 200, created.text
    done = api.wait_status(created.json()["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    return done


def spec_of(engine_dir: Path, job_id: str) -> dict[str, Any]:
    return json.loads((engine_dir / "jobs" / job_id / "spec_seen.json").read_text())


def checkpoint_dir(engine_dir: Path, job_id: str, step: int = 2) -> str:
    return str((engine_dir / "jobs" / job_id / "checkpoints" / f"step-{step}").resolve())


def test_a_job_on_a_lora_result_merges_its_adapter_and_says_where_it_came_from(
    api: Api, engine_dir: Path
) -> None:
    parent = finished(api, suffix="first")
    child = finished(api, model=parent["fine_tuned_model"], suffix="second")

    assert child["model"] == parent["fine_tuned_model"]
    assert child["base_model"] == parent["base_model"] == MODEL
    # The name says what the adapter applies to: the parent fine-tuned model.
    assert child["fine_tuned_model"] == f"ft:{parent['fine_tuned_model']}:second:{child['id']}"

    spec = spec_of(engine_dir, child["id"])
    assert spec["model"] == parent["fine_tuned_model"]
    assert spec["base_model"] == MODEL
    assert spec["merge_adapters"] == [checkpoint_dir(engine_dir, parent["id"])]

    events = list(reversed(api.all_events(child["id"])))
    created, started = events[0], next(e for e in events if e["message"].startswith("Training"))
    lineage = {"base_model": MODEL, "parents": [parent["fine_tuned_model"]], "merged_adapters": 1}
    assert created["data"] == lineage
    assert MODEL in created["message"] and "1 LoRA adapter(s) merged" in created["message"]
    assert {k: started["data"][k] for k in lineage} == lineage
    assert f"(from {MODEL}, 1 LoRA adapter(s) merged)" in started["message"]


def test_a_plain_job_names_its_own_model_as_base_and_merges_nothing(
    api: Api, engine_dir: Path
) -> None:
    job = finished(api)
    assert job["base_model"] == MODEL
    spec = spec_of(engine_dir, job["id"])
    assert spec["base_model"] is None
    assert spec["merge_adapters"] == []


def test_a_chain_of_lora_results_merges_every_adapter_oldest_first(
    api: Api, engine_dir: Path
) -> None:
    first = finished(api)
    second = finished(api, model=first["fine_tuned_model"])
    third = finished(api, model=second["fine_tuned_model"])

    spec = spec_of(engine_dir, third["id"])
    assert spec["base_model"] == MODEL
    assert spec["merge_adapters"] == [
        checkpoint_dir(engine_dir, first["id"]),
        checkpoint_dir(engine_dir, second["id"]),
    ]
    assert third["base_model"] == MODEL
    created = api.all_events(third["id"])[-1]
    assert created["data"]["parents"] == [first["fine_tuned_model"], second["fine_tuned_model"]]


def test_a_full_fine_tune_result_is_loaded_from_its_folder_and_restarts_the_chain(
    api: Api, engine_dir: Path
) -> None:
    lora = finished(api)
    full = finished(api, model=lora["fine_tuned_model"], lora=False)
    on_full = finished(api, model=full["fine_tuned_model"])

    # The full fine-tune's folder holds the whole model, the first adapter included.
    spec = spec_of(engine_dir, on_full["id"])
    assert spec["base_model"] == checkpoint_dir(engine_dir, full["id"])
    assert spec["merge_adapters"] == []
    assert on_full["base_model"] == MODEL


def test_a_checkpoint_id_starts_from_that_checkpoint(engine_dir: Path) -> None:
    server = start_engine(engine_dir)
    try:
        api = Api(server.base_url)
        created = api.create_job(
            training_file=api.processed()["id"], hyperparameters={"n_epochs": 2, "lora": True}
        ).json()
        api.wait_status(created["id"], "succeeded")
        checkpoints = api.http.get(f"fine_tuning/jobs/{created['id']}/checkpoints").json()
        first = min(checkpoints["data"], key=lambda c: c["step_number"])
        child = finished(api, model=first["fine_tuned_model_checkpoint"])
        spec = spec_of(engine_dir, child["id"])
        assert spec["merge_adapters"] == [checkpoint_dir(engine_dir, created["id"], step=2)]
    finally:
        server.stop()


def test_an_unknown_fine_tuned_model_is_a_400_naming_it(api: Api) -> None:
    training = api.processed()
    parent = finished(api)
    for model in (
        f"ft:{MODEL}:engine:ftjob-nope",
        f"ft:{MODEL}:wrong-suffix:{parent['id']}",
        f"{parent['fine_tuned_model']}:ckpt-step-99",
    ):
        response = api.create_job(model=model, training_file=training["id"])
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "model"
        assert error["code"] == "model_not_found"
        assert model in error["message"]
        assert "Traceback" not in error["message"]


def test_the_result_of_a_job_that_has_not_succeeded_is_refused(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="gate")
    try:
        api = Api(server.base_url)
        training = api.processed()
        parent = api.create_job(
            training_file=training["id"], hyperparameters={"lora": True}, suffix="wip"
        ).json()
        api.wait_status(parent["id"], "running")
        name = f"ft:{MODEL}:wip:{parent['id']}"
        response = api.create_job(model=name, training_file=training["id"])
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "model_not_ready"
        assert name in error["message"] and "running" in error["message"]

        (engine_dir / "jobs" / parent["id"] / "go").touch()
        assert api.wait_status(parent["id"], "succeeded")["fine_tuned_model"] == name
        assert api.create_job(model=name, training_file=training["id"]).status_code == 200
    finally:
        server.stop()


def test_a_failed_job_gives_no_model_to_train_on(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="fail")
    try:
        api = Api(server.base_url)
        training = api.processed()
        parent = api.create_job(training_file=training["id"]).json()
        api.wait_status(parent["id"], "failed")
        name = f"ft:{MODEL}:engine:{parent['id']}"
        error = api.create_job(model=name, training_file=training["id"]).json()["error"]
        assert error["code"] == "model_not_ready"
        assert name in error["message"] and "failed" in error["message"]
    finally:
        server.stop()
