"""The client against objects shaped as Nebius really sends them (see nebius_objects)."""

from __future__ import annotations

import json
from pathlib import Path

import respx

from client import Hyperparameters, JobRequest, NebiusClient
from tests.client.conftest import FakeTime
from tests.client.nebius_objects import (
    CHECKPOINT_IDS,
    HYPERPARAMETERS,
    JOB_ID,
    TRAINING_FILE,
    nebius_checkpoints,
    nebius_file,
    nebius_job,
)


async def test_a_nebius_job_reads_with_its_hyperparameters_from_method(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.get(f"fine_tuning/jobs/{JOB_ID}").respond(json=nebius_job("succeeded"))
    job = await client.retrieve_job(JOB_ID)
    assert job.id == JOB_ID and job.is_terminal
    assert job.hyperparameters is None
    assert job.effective_hyperparameters == HYPERPARAMETERS
    assert job.fine_tuned_model is None
    assert job.tags == ["xgenlens"] and job.method is not None
    assert job.progress == 1.0
    assert job.model_extra == {"organization_id": "org-3f2a9c", "from_checkpoint": None}


async def test_a_nebius_job_list_pages(client: NebiusClient, api: respx.MockRouter) -> None:
    api.get("fine_tuning/jobs").respond(
        json={"object": "list", "data": [nebius_job("running")], "has_more": False}
    )
    jobs = [job async for job in client.iter_jobs()]
    assert [j.id for j in jobs] == [JOB_ID]
    assert jobs[0].status == "running"


async def test_nebius_checkpoints_sort_by_step_and_keep_null_metrics(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.get(f"fine_tuning/jobs/{JOB_ID}/checkpoints").respond(json=nebius_checkpoints())
    checkpoints = await client.list_checkpoints(JOB_ID)
    assert [c.id for c in checkpoints] == list(CHECKPOINT_IDS)
    assert [c.step_number for c in checkpoints] == [20, 40]
    assert checkpoints[0].metrics["valid_loss"] is None
    assert checkpoints[1].metrics["valid_loss"] == 1.02


async def test_a_nebius_file_with_null_status_is_ready_after_one_look(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime, tmp_path: Path
) -> None:
    """Nebius always answers `status: null`: waiting would never end, and nothing to wait
    for shows up in the file object; job creation says "not ready" if it is too early."""
    path = tmp_path / "training_data.jsonl"
    path.write_text('{"messages": []}\n')
    api.post("files").respond(json=nebius_file())
    poll = api.get(f"files/{TRAINING_FILE}").respond(json=nebius_file())
    uploaded = await client.upload_file(path)
    assert uploaded.id == TRAINING_FILE and uploaded.status is None
    seen = []
    ready = await client.wait_for_file(uploaded.id, on_progress=lambda f, e: seen.append(f))
    assert ready.id == TRAINING_FILE and ready.is_ready and not ready.is_failed
    assert poll.call_count == 1 and fake_time.sleeps == []
    assert len(seen) == 1


async def test_create_sends_hyperparameters_never_method_and_reads_a_running_job(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    route = api.post("fine_tuning/jobs").respond(json=nebius_job("running"))
    request = JobRequest(
        model="meta-llama/Llama-3.1-8B-Instruct",
        training_file=TRAINING_FILE,
        hyperparameters=Hyperparameters(lora=True, n_epochs=5, batch_size=32),
        suffix="demo-run",
    )
    job = await client.create_job(request)
    sent = json.loads(route.calls.last.request.content)
    assert "method" not in sent and sent["hyperparameters"]["n_epochs"] == 5
    assert job.status == "running"  # Nebius often skips validating_files and queued
    assert job.effective_hyperparameters["batch_size"] == 32
