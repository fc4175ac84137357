"""`client/`'s deployments and chat against a live engine: the best checkpoint deployed under
the name the engine generates, waited for, chatted with (whole and streamed), listed, deleted."""

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from client import NebiusClient, NotFoundError
from client.chat import messages_for
from client.checkpoints import choose_checkpoint
from client.deployments import inference_base
from engine.server import EmbeddedEngine
from tests.engine.conftest import TINY, Api, lora_job, serving, start_engine

KEY = "contract-key"


async def quick_sleep(_seconds: float) -> None:
    # The client's poll backoff, without its wall-clock seconds.
    await asyncio.sleep(0.02)


@pytest.fixture
def server(engine_dir: Path, tiny_model: Path) -> Iterator[EmbeddedEngine]:
    engine = start_engine(engine_dir, **serving(tiny_model), api_key=KEY)
    yield engine
    engine.stop()


@pytest.fixture
async def client(server: EmbeddedEngine) -> AsyncIterator[NebiusClient]:
    async with NebiusClient(KEY, server.base_url, sleep=quick_sleep, max_retries=0) as nebius:
        yield nebius


async def test_deploy_wait_chat_list_and_delete(
    server: EmbeddedEngine, client: NebiusClient, engine_dir: Path, tiny_model: Path
) -> None:
    with Api(server.base_url, api_key=KEY) as api:
        job_id = lora_job(api, engine_dir, tiny_model)["id"]
    job = await client.retrieve_job(job_id)
    chosen = choose_checkpoint(await client.list_checkpoints(job_id))

    deployment = await client.deploy(
        job_id, chosen.id, name="contract", base_model=inference_base(job.model or "")
    )
    assert re.fullmatch(rf"{TINY}-LoRa:contract-[a-z0-9]{{4}}", deployment.name)
    assert deployment.origin == f"{job_id}:{chosen.id}"
    active = await client.wait_for_deployment(deployment.name, timeout=120)
    assert active.is_active and active.name == deployment.name
    assert deployment.name in [d.name for d in await client.list_deployments()]

    messages = messages_for("Say hello", "You are terse.")
    whole = await client.chat_completion(deployment.name, messages, temperature=0, max_tokens=8)
    assert whole.text and whole.model == deployment.name
    pieces = [
        chunk.text
        async for chunk in client.stream_chat_completion(
            deployment.name, messages, temperature=0, max_tokens=8
        )
    ]
    assert len(pieces) > 1 and "".join(pieces) == whole.text  # greedy: the same answer

    deleted = await client.delete_deployment(deployment.name)
    assert (deleted.name, deleted.state) == (deployment.name, "deleted")
    with pytest.raises(NotFoundError):
        await client.get_deployment(deployment.name)
