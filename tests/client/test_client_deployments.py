"""Custom models (`/v0/models`): Nebius's generated full names, its polls without a status,
its lists bare or wrapped, `error` with `status_reason`, deletes, and the inference base id."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from client import NebiusClient
from client.deployments import (
    Deployment,
    DeploymentFailed,
    DeploymentTimeout,
    default_name,
    inference_base,
    is_lora,
    not_lora_message,
    requested_name_of,
    v0_root,
)
from client.errors import NotFoundError, ServerError
from client.models import Job
from tests.client.conftest import API_KEY, HOST_URL, FakeTime
from tests.client.nebius_objects import CHECKPOINT_IDS, JOB_ID, nebius_job

# As Nebius's cookbook printed them (post-training/fine-tuning-1/fine_tune_llama.ipynb).
FULL_NAME = "meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:my-finetuned-model-JuNN"
SOURCE = f"{JOB_ID}:{CHECKPOINT_IDS[1]}"
PATH = f"/v0/models/{FULL_NAME}"


def created(**fields: object) -> dict[str, object]:
    answer: dict[str, object] = {
        "name": FULL_NAME,
        "base_model": "meta-llama/Meta-Llama-3.1-8B-Instruct",
        "source": SOURCE,
        "description": "Fine tuned model",
        "created_at": 1765431401,
        "status": "validating",
    }
    answer.update(fields)
    return answer


def active(**fields: object) -> dict[str, object]:
    answer: dict[str, object] = {
        "type": "text2text",
        "name": FULL_NAME,
        "status": "active",
        "status_reason": None,
        "checkpoint_id": CHECKPOINT_IDS[1],
        "job_id": JOB_ID,
        "file_id": None,
        "url": None,
        "created_at": 1765431401,
        "description": "Fine tuned model",
        "vendor": "meta",
        "tags": ["128K context", "small", "JSON mode", "lora"],
    }
    answer.update(fields)
    return answer


@pytest.fixture
def api_root() -> str:
    return HOST_URL  # deployments live under /v0, beside the /v1 base URL


@pytest.mark.parametrize(
    ("base_url", "root"),
    [
        ("https://api.tokenfactory.nebius.com/v1/", "https://api.tokenfactory.nebius.com/v0/"),
        ("https://api.studio.nebius.com/v1", "https://api.studio.nebius.com/v0/"),
        ("http://127.0.0.1:8800/v1/", "http://127.0.0.1:8800/v0/"),
        ("https://proxy.example/nebius/v1/", "https://proxy.example/nebius/v0/"),
        ("https://proxy.example/nebius/", "https://proxy.example/nebius/v0/"),
    ],
)
def test_the_v0_root_sits_beside_the_v1_base_url(base_url: str, root: str) -> None:
    assert v0_root(base_url) == root


async def test_deploy_sends_the_cookbook_body_and_keeps_the_generated_full_name(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    # The generated ending ("-JuNN") cannot be derived from the name asked for.
    post = api.post("v0/models").respond(json=created())
    got = api.get(path=PATH).respond(json=active())

    deployment = await client.deploy(
        JOB_ID,
        CHECKPOINT_IDS[1],
        name="my-finetuned-model",
        base_model="meta-llama/Meta-Llama-3.1-8B-Instruct",
        description="Fine tuned model",
    )
    assert json.loads(post.calls.last.request.content) == {
        "name": "my-finetuned-model",
        "base_model": "meta-llama/Meta-Llama-3.1-8B-Instruct",
        "source": SOURCE,
        "description": "Fine tuned model",
    }
    assert post.calls.last.request.headers["authorization"] == f"Bearer {API_KEY}"
    assert (deployment.name, deployment.state) == (FULL_NAME, "validating")

    again = await client.get_deployment(deployment.name)
    # The full name goes into the path as the cookbook sends it: "/" and ":" unescaped.
    assert got.calls.last.request.url.raw_path == PATH.encode()
    assert again.is_active and again.origin == SOURCE


async def test_waiting_reads_a_first_answer_without_a_status_as_validating(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    api.get(path=PATH).mock(
        side_effect=[
            httpx.Response(200, json={"name": FULL_NAME}),  # no status yet
            httpx.Response(200, json=active(status="validating")),
            httpx.Response(200, json=active()),
        ]
    )
    seen: list[tuple[str, float]] = []
    deployment = await client.wait_for_deployment(
        FULL_NAME, on_progress=lambda d, elapsed: seen.append((d.state, elapsed))
    )
    assert deployment.is_active
    assert [state for state, _ in seen] == ["validating", "validating", "active"]
    assert len(fake_time.sleeps) == 2 and fake_time.sleeps[1] > fake_time.sleeps[0]


async def test_an_error_status_raises_with_nebius_s_status_reason(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    reason = "LoRA rank 256 is not supported for serverless inference"
    api.get(path=PATH).respond(json=active(status="error", status_reason=reason))
    with pytest.raises(DeploymentFailed) as caught:
        await client.wait_for_deployment(FULL_NAME)
    assert reason in caught.value.message and FULL_NAME in caught.value.message
    assert "--base-model" in (caught.value.hint or "")


async def test_waiting_is_bounded_by_the_timeout(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    api.get(path=PATH).respond(json=active(status="validating"))
    with pytest.raises(DeploymentTimeout) as caught:
        await client.wait_for_deployment(FULL_NAME, timeout=60)
    assert "still validating" in caught.value.message
    # The last sleep is cut to what is left, so the sleeps add up to the limit (to float rounding).
    assert sum(fake_time.sleeps) == pytest.approx(60)


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare array", "wrapped list"])
async def test_the_list_is_a_bare_array_or_a_wrapped_one(
    client: NebiusClient, api: respx.MockRouter, wrapped: bool
) -> None:
    items = [active(), active(name="Qwen/Qwen3-4B-fast-LoRa:grammar-checker-WpCf", job_id=None)]
    api.get("v0/models").respond(json={"object": "list", "data": items} if wrapped else items)
    deployments = await client.list_deployments()
    assert [d.name for d in deployments] == [FULL_NAME, items[1]["name"]]
    assert deployments[0].origin == SOURCE


async def test_delete_answers_deleted(client: NebiusClient, api: respx.MockRouter) -> None:
    route = api.delete(path=PATH).respond(json={"status": "deleted"})
    deleted = await client.delete_deployment(FULL_NAME)
    assert route.call_count == 1 and route.calls.last.request.url.raw_path == PATH.encode()
    assert (deleted.name, deleted.state) == (FULL_NAME, "deleted")


async def test_a_delete_whose_answer_was_lost_and_then_finds_nothing_is_done(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.delete(path=PATH).mock(
        side_effect=[httpx.Response(502), httpx.Response(404, json={"detail": "Not found"})]
    )
    deleted = await client.delete_deployment(FULL_NAME)
    assert deleted.state == "deleted"


async def test_an_unknown_model_is_a_404_that_says_where_to_look(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.get(path="/v0/models/nope").respond(404, json={"detail": "Model not found"})
    api.delete(path="/v0/models/nope").respond(404, json={"detail": "Model not found"})
    for call in (client.get_deployment, client.delete_deployment):
        with pytest.raises(NotFoundError) as caught:
            await call("nope")
        assert caught.value.message == "Model not found"
        assert "finetune deployments" in (caught.value.hint or "")
        assert caught.value.request is not None
        assert caught.value.request.url == "https://nebius.test/v0/models/nope"


async def test_a_deploy_whose_answer_was_lost_is_found_not_sent_twice(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    post = api.post("v0/models").respond(502)
    api.get("v0/models").respond(
        json=[
            active(name="meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:other-AbCd"),
            active(name=FULL_NAME, source=SOURCE, created_at=1_700_000_001),
        ]
    )
    deployment = await client.deploy(
        JOB_ID,
        CHECKPOINT_IDS[1],
        name="my-finetuned-model",
        base_model="meta-llama/Meta-Llama-3.1-8B-Instruct",
    )
    assert deployment.name == FULL_NAME and post.call_count == 1


async def test_a_deploy_that_failed_and_left_nothing_is_sent_again(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    post = api.post("v0/models").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=created())]
    )
    api.get("v0/models").respond(json=[])
    deployment = await client.deploy(JOB_ID, CHECKPOINT_IDS[1], name="n", base_model="b")
    assert deployment.name == FULL_NAME and post.call_count == 2 and len(fake_time.sleeps) == 1


async def test_a_deploy_never_resent_blind(client: NebiusClient, api: respx.MockRouter) -> None:
    api.post("v0/models").respond(500)
    api.get("v0/models").respond(500)
    with pytest.raises(ServerError) as caught:
        await client.deploy(JOB_ID, CHECKPOINT_IDS[1], name="n", base_model="b")
    assert "finetune deployments" in (caught.value.hint or "")


def test_the_inference_base_id_is_mapped_where_known_and_overridable() -> None:
    assert inference_base("meta-llama/Llama-3.1-8B-Instruct") == (
        "meta-llama/Meta-Llama-3.1-8B-Instruct"
    )
    assert inference_base("meta-llama/Llama-3.1-70B-Instruct") == (
        "meta-llama/Meta-Llama-3.1-70B-Instruct"
    )
    assert inference_base("Qwen/Qwen3-30B-A3B-Instruct-2507") == "Qwen/Qwen3-30B-A3B-Instruct-2507"
    assert inference_base("meta-llama/Llama-3.1-8B-Instruct", "custom/base") == "custom/base"
    assert inference_base("meta-llama/Llama-3.1-8B-Instruct", "  ") == (
        "meta-llama/Meta-Llama-3.1-8B-Instruct"
    )


def test_lora_is_read_at_the_top_level_or_under_method() -> None:
    assert is_lora(Job.model_validate(nebius_job())) is True  # under method.supervised
    hp = {"type": "supervised", "supervised": {"hyperparameters": {"lora": False}}}
    full = Job.model_validate(nebius_job(method=hp))
    assert is_lora(full) is False
    assert "finetune download" in not_lora_message(full) and "--lora" in not_lora_message(full)
    assert is_lora(Job.model_validate({"id": "j", "hyperparameters": {"lora": True}})) is True
    assert is_lora(Job.model_validate({"id": "j"})) is None


def test_names_nobody_chose_are_valid_and_names_are_read_back_from_full_names() -> None:
    job = Job.model_validate(nebius_job())
    assert default_name(job, 40) == "demo-run-49b46256-step40"
    odd = Job.model_validate({"id": "ftjob-abc", "suffix": "my model/v2!" + "x" * 80})
    name = default_name(odd, 7)
    assert len(name) <= 64 and name.endswith("-abc-step7") and " " not in name
    assert requested_name_of(FULL_NAME) == "my-finetuned-model"
    assert requested_name_of("Sofrony-Test-hfjV") == "Sofrony-Test"


def test_a_deployment_without_a_status_is_validating() -> None:
    deployment = Deployment.model_validate({"name": FULL_NAME})
    assert deployment.state == "validating" and not deployment.is_settled
