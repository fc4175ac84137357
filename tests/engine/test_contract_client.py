"""`client/`'s NebiusClient against a live engine: the two sides of the contract agree."""

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from client import (
    AuthenticationError,
    BadRequestError,
    FileProcessingError,
    JobRequest,
    NebiusClient,
    NotFoundError,
)
from client.hyperparameters import Hyperparameters
from engine.server import EmbeddedEngine
from tests.engine.conftest import CHAT_LINE, MODEL, start_engine

KEY = "contract-key"


async def quick_sleep(_seconds: float) -> None:
    # The client's backoff, without its wall-clock seconds.
    await asyncio.sleep(0.02)


@pytest.fixture
def gated(engine_dir: Path) -> Iterator[EmbeddedEngine]:
    server = start_engine(engine_dir, mode="gate", api_key=KEY)
    yield server
    server.stop()


@pytest.fixture
async def client(gated: EmbeddedEngine) -> AsyncIterator[NebiusClient]:
    async with NebiusClient(KEY, gated.base_url, sleep=quick_sleep, max_retries=0) as nebius:
        yield nebius


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text(CHAT_LINE * 10)
    return path


async def _until(check, what: str):
    for _ in range(1000):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_upload_wait_create_watch_and_download(
    client: NebiusClient, dataset: Path, engine_dir: Path, tmp_path: Path
) -> None:
    assert MODEL in [m.id for m in await client.list_models()]
    uploaded = await client.upload_file(dataset)
    assert uploaded.bytes == dataset.stat().st_size
    ready = await client.wait_for_file(uploaded.id)
    assert ready.status == "processed"
    assert [f.id for f in await client.list_files()] == [uploaded.id]

    request = JobRequest(
        model=MODEL,
        training_file=uploaded.id,
        hyperparameters=Hyperparameters(n_epochs=2, lora=True),
        suffix="contract",
    )
    job = await client.create_job(request)
    assert job.status == "queued"
    assert job.hyperparameters["lora"] is True
    assert (await client.list_jobs()).data[0].id == job.id

    await _until(lambda: asyncio.to_thread((engine_dir / "jobs" / job.id).is_dir), "start")
    (engine_dir / "jobs" / job.id / "go").write_text("")

    async def finished():
        current = await client.retrieve_job(job.id)
        return current.status == "succeeded" and current

    done = await _until(finished, "the job to succeed")
    assert done.fine_tuned_model == f"ft:{MODEL}:contract:{job.id}"
    assert done.trained_steps == done.total_steps == 4

    events = [e async for e in client.iter_events(job.id, page_size=3)]
    assert events[0].message.startswith("Created fine-tuning job")
    assert events[-1].message == "The job has successfully completed."
    # The engine keeps OpenAI's newest-first listing; the client turns it round.
    raw = (await client.list_events(job.id, limit=100)).data
    assert [e.id for e in events] == [e.id for e in reversed(raw)]
    assert [e.created_at for e in events] == sorted(e.created_at for e in events)
    later = [e async for e in client.iter_events(job.id, after_event_id=events[-3].id)]
    assert [e.id for e in later] == [e.id for e in events[-2:]]

    checkpoints = await client.list_checkpoints(job.id)
    assert [c.step_number for c in checkpoints] == [2, 4]
    files = await client.checkpoint_files(checkpoints[-1])
    weights = next(f for f in files if f.filename.endswith("adapter_model.safetensors"))
    size = await client.download_file(weights.id, tmp_path / "out" / "adapter.safetensors")
    assert size == weights.bytes
    assert (tmp_path / "out" / "adapter.safetensors").read_bytes() == b"weights at step 4"

    assert await client.delete_file(uploaded.id) is True
    with pytest.raises(NotFoundError):
        await client.retrieve_file(uploaded.id)


async def test_cancel_through_the_client(
    client: NebiusClient, dataset: Path, engine_dir: Path
) -> None:
    file_id = (await client.wait_for_file((await client.upload_file(dataset)).id)).id
    job = await client.create_job(JobRequest(model=MODEL, training_file=file_id))

    async def running():
        return (await client.retrieve_job(job.id)).status == "running"

    await _until(running, "the job to run")
    cancelled = await client.cancel_job(job.id)
    assert cancelled.status == "cancelled"


async def test_create_waits_out_a_file_that_is_not_ready_yet(
    engine_dir: Path, dataset: Path, validation_gate: threading.Event
) -> None:
    refusals = 0

    async def sleep_and_release(_seconds: float) -> None:
        # The engine said "file not ready yet"; processing finishes while the client waits.
        nonlocal refusals
        refusals += 1
        validation_gate.set()
        await asyncio.sleep(0.05)

    server = start_engine(engine_dir)
    try:
        async with NebiusClient("k", server.base_url, sleep=sleep_and_release) as nebius:
            uploaded = await nebius.upload_file(dataset)
            job = await nebius.create_job(JobRequest(model=MODEL, training_file=uploaded.id))
            assert job.training_file == uploaded.id
            assert refusals >= 1
    finally:
        validation_gate.set()
        server.stop()


async def test_the_engines_errors_map_to_the_clients_exceptions(
    client: NebiusClient, gated: EmbeddedEngine, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(CHAT_LINE + "{not json\n")
    uploaded = await client.upload_file(bad)
    with pytest.raises(FileProcessingError) as processing:
        await client.wait_for_file(uploaded.id)
    assert "line 2" in str(processing.value)
    with pytest.raises(BadRequestError) as refused:
        await client.create_job(JobRequest(model=MODEL, training_file=uploaded.id))
    assert "line 2" in refused.value.message
    with pytest.raises(NotFoundError):
        await client.retrieve_job("ftjob-missing")

    async with NebiusClient("wrong-key", gated.base_url, max_retries=0) as stranger:
        with pytest.raises(AuthenticationError) as denied:
            await stranger.list_models()
    assert "wrong-key" not in str(denied.value)
