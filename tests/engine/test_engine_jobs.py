"""Jobs: creation checks, the run through the worker protocol, events, checkpoints, results."""

import json
import threading
from pathlib import Path

import pytest

from tests.engine.conftest import CHAT_LINE, MODEL, Api, start_engine, wait_for


def test_a_job_runs_to_success_with_events_checkpoints_and_downloadable_results(
    api: Api,
) -> None:
    training = api.processed()
    validation = api.processed(CHAT_LINE * 3)
    created = api.create_job(
        training_file=training["id"],
        validation_file=validation["id"],
        hyperparameters={"n_epochs": 2, "lora": True, "batch_size": "auto"},
        suffix="cats",
        seed=7,
    )
    assert created.status_code == 200, created.text
    job = created.json()
    assert job["object"] == "fine_tuning.job"
    assert job["status"] == "queued"
    assert job["hyperparameters"]["n_epochs"] == 2
    assert job["hyperparameters"]["lora"] is True
    assert job["hyperparameters"]["batch_size"] == 8  # "auto" is the default
    assert job["seed"] == 7

    done = api.wait_status(job["id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done["error"]
    assert done["trained_steps"] == 4 and done["total_steps"] == 4
    assert done["trained_tokens"] == 400
    assert done["finished_at"] is not None
    assert done["fine_tuned_model"] == f"ft:{MODEL}:cats:{job['id']}"
    assert done["fine_tuned_model"] in [m["id"] for m in api.http.get("models").json()["data"]]

    messages = [e["message"] for e in reversed(api.all_events(job["id"]))]
    assert messages[0].startswith("Created fine-tuning job")
    assert "10 examples" in messages[1] and "validation file has 3 examples" in messages[1]
    assert messages[2] == "Job queued."
    assert any(m.startswith("Training started on cpu") and "4 steps" in m for m in messages)
    assert any(m.startswith("Step 1/4: loss 2") for m in messages)
    assert any(m.startswith("Epoch 2 finished") for m in messages)
    assert messages[-1] == "The job has successfully completed."
    # The model's validation loss before the first step: an event, the job, every checkpoint.
    base = next(e for e in api.all_events(job["id"]) if e["message"].startswith("Base model"))
    assert base["message"] == "Base model validation loss 3.57 before training."
    assert base["data"] == {"base_valid_loss": 3.57}
    assert messages.index(base["message"]) < messages.index(first_step_message(messages))
    assert job["base_valid_loss"] is None  # not measured yet when the job is created
    assert done["base_valid_loss"] == 3.57
    first_step = next(e for e in api.all_events(job["id"]) if e["message"].startswith("Step 1/4"))
    assert first_step["type"] == "metrics"
    assert first_step["data"]["loss"] == 2.0
    assert first_step["data"]["trained_tokens"] == 100
    assert first_step["data"]["tokens_per_second"] == 1000.0

    checkpoints = api.http.get(f"fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    assert sorted(c["step_number"] for c in checkpoints) == [2, 4]
    last = max(checkpoints, key=lambda c: c["step_number"])
    assert last["metrics"]["train_loss"] == 0.5
    assert [c["metrics"]["base_valid_loss"] for c in checkpoints] == [3.57, 3.57]
    assert last["fine_tuned_model_checkpoint"].endswith(":ckpt-step-4")
    assert done["result_files"] == last["result_files"]
    names = {}
    for file_id in last["result_files"]:
        meta = api.file(file_id)
        assert meta["purpose"] == "fine-tune-results"
        names[meta["filename"]] = api.http.get(f"files/{file_id}/content").content
    assert names == {
        f"{job['id']}/step-4/adapter_model.safetensors": b"weights at step 4",
        f"{job['id']}/step-4/adapter_config.json": b'{"r": 8}',
    }


def first_step_message(messages: list[str]) -> str:
    return next(m for m in messages if m.startswith("Step 1/"))


def test_a_job_without_a_validation_file_has_no_base_validation_loss(api: Api) -> None:
    job = api.create_job(training_file=api.processed()["id"], hyperparameters={"n_epochs": 1})
    done = api.wait_status(job.json()["id"], "succeeded")
    assert done["base_valid_loss"] is None
    assert not any(e["message"].startswith("Base model") for e in api.all_events(done["id"]))
    [checkpoint] = api.http.get(f"fine_tuning/jobs/{done['id']}/checkpoints").json()["data"]
    assert "base_valid_loss" not in checkpoint["metrics"]


def test_the_worker_gets_a_spec_with_absolute_paths_and_the_hyperparameters(
    api: Api, engine_dir: Path
) -> None:
    training = api.processed()
    job = api.create_job(training_file=training["id"], hyperparameters={"n_epochs": 1}).json()
    api.wait_status(job["id"], "succeeded")
    spec = json.loads((engine_dir / "jobs" / job["id"] / "spec_seen.json").read_text())
    assert spec["job_id"] == job["id"]
    assert spec["model"] == MODEL
    assert Path(spec["training_file"]).is_absolute()
    assert Path(spec["training_file"]).read_text() == CHAT_LINE * 10
    assert spec["validation_file"] is None
    assert spec["output_dir"] == str((engine_dir / "jobs" / job["id"]).resolve())
    assert spec["hyperparameters"]["n_epochs"] == 1
    assert spec["resume_from"] is None
    assert spec["seed"] == 42


def test_a_file_not_processed_yet_answers_400_file_not_ready_yet(
    engine_dir: Path, validation_gate: threading.Event
) -> None:
    server = start_engine(engine_dir)
    try:
        api = Api(server.base_url)
        file_id = api.upload(CHAT_LINE)["id"]
        response = api.create_job(training_file=file_id)
        assert response.status_code == 400
        error = response.json()["error"]
        assert "file not ready yet" in error["message"]
        assert error["param"] == "training_file"
        validation_gate.set()
        wait_for(lambda: api.file(file_id)["status"] == "processed", "processing")
        assert api.create_job(training_file=file_id).status_code == 200
    finally:
        validation_gate.set()
        server.stop()


def test_a_file_in_error_answers_400_with_the_reasons(api: Api) -> None:
    bad = api.processed(CHAT_LINE + "{broken\n")
    response = api.create_job(training_file=bad["id"])
    assert response.status_code == 400
    assert "line 2" in response.json()["error"]["message"]
    assert "invalid JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "param", "says"),
    [
        ({"training_file": "file-missing"}, 400, "training_file", "no file with id"),
        ({"model": "no-such-model"}, 400, "model", "not available"),
        ({"hyperparameters": {"n_epochs": 0}}, 422, "hyperparameters.n_epochs", "n_epochs"),
        ({"hyperparameters": {"epochs": 2}}, 422, "hyperparameters.epochs", "Known hyperparam"),
        ({"hyperparameters": {"learning_rate": "fast"}}, 422, "hyperparameters.learning_rate", ""),
        ({"seed": "abc"}, 422, "seed", "seed"),
    ],
)
def test_a_bad_job_request_says_which_field_is_wrong(
    api: Api, body: dict, status: int, param: str, says: str
) -> None:
    training = api.processed()
    response = api.create_job(**({"training_file": training["id"]} | body))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert says in error["message"]
    assert api.http.get("fine_tuning/jobs").json()["data"] == []


def test_a_body_that_is_not_json_is_a_400(api: Api) -> None:
    response = api.http.post(
        "fine_tuning/jobs", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_an_unknown_job_is_a_404(api: Api) -> None:
    for response in (
        api.http.get("fine_tuning/jobs/ftjob-nope"),
        api.http.post("fine_tuning/jobs/ftjob-nope/cancel"),
        api.http.get("fine_tuning/jobs/ftjob-nope/events"),
        api.http.get("fine_tuning/jobs/ftjob-nope/checkpoints"),
    ):
        assert response.status_code == 404
        assert "ftjob-nope" in response.json()["error"]["message"]


def test_events_come_newest_first_and_page_with_after_and_limit(api: Api) -> None:
    training = api.processed()
    job = api.create_job(training_file=training["id"], hyperparameters={"n_epochs": 1}).json()
    api.wait_status(job["id"], "succeeded")
    everything = api.all_events(job["id"])
    assert everything[0]["message"] == "The job has successfully completed."
    assert all(e["object"] == "fine_tuning.job.event" for e in everything)

    pages, after = [], None
    while True:
        page = api.events(job["id"], limit=3, **({"after": after} if after else {}))
        pages.extend(page["data"])
        if not page["has_more"]:
            break
        assert len(page["data"]) == 3
        after = page["data"][-1]["id"]
    assert [e["id"] for e in pages] == [e["id"] for e in everything]


def test_jobs_are_listed_newest_first_with_paging(api: Api) -> None:
    training = api.processed()
    ids = [
        api.create_job(training_file=training["id"], hyperparameters={"n_epochs": 1}).json()["id"]
        for _ in range(3)
    ]
    first = api.http.get("fine_tuning/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in first["data"]] == [ids[2], ids[1]]
    assert first["has_more"] is True
    rest = api.http.get("fine_tuning/jobs", params={"limit": 2, "after": ids[1]}).json()
    assert [j["id"] for j in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False
    assert api.http.get("fine_tuning/jobs", params={"limit": 0}).status_code == 400


def test_a_truncation_notice_is_an_event(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="truncate")
    try:
        api = Api(server.base_url)
        job = api.create_job(training_file=api.processed()["id"]).json()
        api.wait_status(job["id"], "succeeded")
        notices = [e for e in api.all_events(job["id"]) if e["level"] == "warn"]
        assert len(notices) == 1
        assert "2 example(s) truncated and 1 dropped" in notices[0]["message"]
        assert "8192 tokens" in notices[0]["message"]
        assert notices[0]["data"] == {"truncated": 2, "dropped": 1, "context_length": 8192}
    finally:
        server.stop()
