"""The official `openai` package works against the engine unchanged, over real HTTP."""

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from engine.server import EmbeddedEngine
from tests.engine.conftest import CHAT_LINE, MODEL, start_engine, wait_for

KEY = "sdk-test-key"


@pytest.fixture
def gated(engine_dir: Path) -> Iterator[EmbeddedEngine]:
    server = start_engine(engine_dir, mode="gate", api_key=KEY)
    yield server
    server.stop()


@pytest.fixture
def sdk(gated: EmbeddedEngine) -> Iterator[OpenAI]:
    client = OpenAI(base_url=gated.base_url, api_key=KEY, max_retries=0)
    yield client
    client.close()


def test_files_create_retrieve_list_content_delete(sdk: OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(CHAT_LINE * 10)
    with open(path, "rb") as handle:
        created = sdk.files.create(file=handle, purpose="fine-tune")
    assert created.filename == "train.jsonl"
    assert created.bytes == path.stat().st_size

    processed = wait_for(
        lambda: (f := sdk.files.retrieve(created.id)).status == "processed" and f, "processing"
    )
    assert processed.id == created.id
    assert [f.id for f in sdk.files.list()] == [created.id]
    assert sdk.files.content(created.id).read() == path.read_bytes()

    deleted = sdk.files.delete(created.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.files.retrieve(created.id)
    assert created.id in caught.value.message


def test_jobs_create_retrieve_list_cancel_events_and_checkpoints(
    sdk: OpenAI, engine_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(CHAT_LINE * 10)
    with open(path, "rb") as handle:
        file_id = sdk.files.create(file=handle, purpose="fine-tune").id
    wait_for(lambda: sdk.files.retrieve(file_id).status == "processed", "processing")

    doomed = sdk.fine_tuning.jobs.create(model=MODEL, training_file=file_id)
    wait_for(lambda: sdk.fine_tuning.jobs.retrieve(doomed.id).status == "running", "running")
    assert sdk.fine_tuning.jobs.cancel(doomed.id).status == "cancelled"

    job = sdk.fine_tuning.jobs.create(
        model=MODEL, training_file=file_id, hyperparameters={"n_epochs": 2}, suffix="sdk"
    )
    assert job.status == "queued"
    wait_for((engine_dir / "jobs" / job.id).is_dir, "the job to start")
    (engine_dir / "jobs" / job.id / "go").write_text("")
    done = wait_for(
        lambda: (j := sdk.fine_tuning.jobs.retrieve(job.id)).status == "succeeded" and j,
        "the job to succeed",
    )
    assert done.fine_tuned_model == f"ft:{MODEL}:sdk:{job.id}"
    assert done.trained_tokens == 400

    assert [j.id for j in sdk.fine_tuning.jobs.list()] == [job.id, doomed.id]
    assert [j.id for j in sdk.fine_tuning.jobs.list(limit=1)] == [job.id, doomed.id]

    events = sdk.fine_tuning.jobs.list_events(job.id, limit=5)
    assert len(events.data) == 5
    assert events.data[0].message == "The job has successfully completed."
    every = list(sdk.fine_tuning.jobs.list_events(job.id, limit=4))
    assert every[-1].message.startswith("Created fine-tuning job")

    checkpoints = list(sdk.fine_tuning.jobs.checkpoints.list(job.id))
    assert sorted(c.step_number for c in checkpoints) == [2, 4]
    last = max(checkpoints, key=lambda c: c.step_number)
    assert last.metrics.train_loss == 0.5
    contents = {
        sdk.files.retrieve(fid).filename: sdk.files.content(fid).read() for fid in done.result_files
    }
    assert contents[f"{job.id}/step-4/adapter_model.safetensors"] == b"weights at step 4"


def test_errors_arrive_as_the_sdks_typed_exceptions(gated: EmbeddedEngine) -> None:
    wrong = OpenAI(base_url=gated.base_url, api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    right = OpenAI(base_url=gated.base_url, api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        right.fine_tuning.jobs.create(model=MODEL, training_file="file-missing")
    assert caught.value.param == "training_file"
    with pytest.raises(openai.UnprocessableEntityError):
        right.fine_tuning.jobs.create(
            model=MODEL, training_file="file-x", hyperparameters={"n_epochs": -1}
        )
    assert MODEL in [m.id for m in right.models.list()]
