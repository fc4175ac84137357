"""Jobs: create (retries without duplicate paid jobs, file-not-ready), list and page,
retrieve, cancel, checkpoints."""

import json

import httpx
import pytest
import respx

from client import (
    BadRequestError,
    FileNotReadyError,
    Hyperparameters,
    JobRequest,
    NebiusClient,
    RateLimitError,
    ServerError,
)
from tests.client.conftest import FakeTime, job_json

REQUEST = JobRequest(
    model="meta-llama/Llama-3.1-8B-Instruct",
    training_file="file-train",
    hyperparameters=Hyperparameters(n_epochs=2, lora=True),
    seed=7,
)
NOW = 1_700_000_000  # FakeTime's wall clock


async def test_create_job_sends_the_request(client: NebiusClient, api: respx.MockRouter) -> None:
    route = api.post("fine_tuning/jobs").respond(
        json=job_json("ftjob-9", status="validating_files")
    )
    job = await client.create_job(REQUEST)
    assert job.id == "ftjob-9" and job.status == "validating_files"
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == REQUEST.model
    assert sent["hyperparameters"]["n_epochs"] == 2 and sent["hyperparameters"]["lora"] is True
    assert sent["seed"] == 7


async def test_failed_create_that_did_create_the_job_is_not_repeated(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    create = api.post("fine_tuning/jobs").respond(502, text="Bad Gateway")
    listing = api.get("fine_tuning/jobs").respond(
        json={
            "object": "list",
            "data": [
                job_json("ftjob-new", created_at=NOW + 1, seed=7),
                job_json("ftjob-old", created_at=NOW - 3600, seed=7),
            ],
            "has_more": False,
        }
    )
    job = await client.create_job(REQUEST)
    assert job.id == "ftjob-new"
    assert create.call_count == 1  # found, so not sent again
    assert listing.called


async def test_dropped_connection_on_create_checks_before_resending(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    create = api.post("fine_tuning/jobs").mock(
        side_effect=[httpx.ReadTimeout("no answer"), httpx.Response(200, json=job_json("ftjob-2"))]
    )
    api.get("fine_tuning/jobs").respond(json={"data": [], "has_more": False})
    job = await client.create_job(REQUEST)
    assert job.id == "ftjob-2"
    assert create.call_count == 2


async def test_jobs_for_other_requests_do_not_count_as_ours(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    create = api.post("fine_tuning/jobs").mock(
        side_effect=[httpx.Response(500), httpx.Response(200, json=job_json("ftjob-mine"))]
    )
    api.get("fine_tuning/jobs").respond(
        json={
            "data": [
                job_json("other-file", training_file="file-other", created_at=NOW),
                job_json("other-model", model="Qwen/Qwen3-8B", created_at=NOW),
                job_json("other-seed", seed=8, created_at=NOW),
                job_json("other-validation", validation_file="file-v", created_at=NOW),
                job_json("too-old", seed=7, created_at=NOW - 10_000),
            ]
        }
    )
    assert (await client.create_job(REQUEST)).id == "ftjob-mine"
    assert create.call_count == 2


async def test_create_gives_up_after_the_bound(client: NebiusClient, api: respx.MockRouter) -> None:
    create = api.post("fine_tuning/jobs").respond(500)
    api.get("fine_tuning/jobs").respond(json={"data": []})
    with pytest.raises(ServerError):
        await client.create_job(REQUEST)
    assert create.call_count == 4


async def test_create_stops_when_it_cannot_check_for_a_created_job(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    create = api.post("fine_tuning/jobs").respond(500)
    api.get("fine_tuning/jobs").respond(401, json={"detail": "expired"})
    with pytest.raises(ServerError) as info:
        await client.create_job(REQUEST)
    assert create.call_count == 1
    assert "finetune list" in (info.value.hint or "")


async def test_rate_limited_create_is_resent_after_retry_after(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    create = api.post("fine_tuning/jobs").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "5"}),
            httpx.Response(200, json=job_json("ftjob-3")),
        ]
    )
    listing = api.get("fine_tuning/jobs")
    assert (await client.create_job(REQUEST)).id == "ftjob-3"
    assert create.call_count == 2 and not listing.called  # 429 means "not done": no check
    assert fake_time.sleeps == [5.0]


async def test_rate_limited_create_is_bounded(client: NebiusClient, api: respx.MockRouter) -> None:
    api.post("fine_tuning/jobs").respond(429)
    with pytest.raises(RateLimitError):
        await client.create_job(REQUEST)


async def test_file_not_ready_then_ready(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    not_ready = httpx.Response(
        400, json={"error": {"message": "Training file file-train is not ready yet"}}
    )
    create = api.post("fine_tuning/jobs").mock(
        side_effect=[not_ready, not_ready, httpx.Response(200, json=job_json("ftjob-4"))]
    )
    assert (await client.create_job(REQUEST)).id == "ftjob-4"
    assert create.call_count == 3
    assert len(fake_time.sleeps) == 2


async def test_file_not_ready_is_bounded_by_the_wait_limit(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    api.post("fine_tuning/jobs").respond(422, json={"detail": "file has not been processed yet"})
    with pytest.raises(FileNotReadyError, match="not been processed") as info:
        await client.create_job(REQUEST, file_wait_timeout=60)
    assert info.value.status_code == 422
    assert 60 <= sum(fake_time.sleeps) <= 60 + 15 * 1.2


async def test_other_bad_requests_fail_at_once(client: NebiusClient, api: respx.MockRouter) -> None:
    create = api.post("fine_tuning/jobs").respond(
        400, json={"error": {"message": "model 'x' is not available for fine-tuning"}}
    )
    with pytest.raises(BadRequestError, match="not available"):
        await client.create_job(REQUEST)
    assert create.call_count == 1


async def test_list_jobs_page_and_iterate_across_pages(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        pages = {
            None: (["j5", "j4"], True),
            "j4": (["j3", "j2"], True),
            "j2": (["j1"], False),
        }
        ids, more = pages[after]
        return httpx.Response(
            200, json={"object": "list", "data": [job_json(i) for i in ids], "has_more": more}
        )

    route = api.get("fine_tuning/jobs").mock(side_effect=page)
    first = await client.list_jobs(limit=2)
    assert [j.id for j in first.data] == ["j5", "j4"] and first.has_more
    assert route.calls.last.request.url.params["limit"] == "2"
    assert "after" not in route.calls.last.request.url.params
    assert [j.id async for j in client.iter_jobs(page_size=2)] == ["j5", "j4", "j3", "j2", "j1"]


async def test_retrieve_and_cancel(client: NebiusClient, api: respx.MockRouter) -> None:
    api.get("fine_tuning/jobs/ftjob-1").respond(
        json=job_json(status="succeeded", fine_tuned_model="ft:model", trained_tokens=1234)
    )
    cancel = api.post("fine_tuning/jobs/ftjob-1/cancel").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=job_json(status="cancelled"))]
    )
    job = await client.retrieve_job("ftjob-1")
    assert job.is_terminal and job.fine_tuned_model == "ft:model"
    assert (await client.cancel_job("ftjob-1")).status == "cancelled"
    assert cancel.call_count == 2  # cancelling is idempotent, so it is retried


async def test_checkpoints_are_sorted_by_step(client: NebiusClient, api: respx.MockRouter) -> None:
    def cp(cid: str, step: int) -> dict:
        return {
            "id": cid,
            "object": "fine_tuning.job.checkpoint",
            "step_number": step,
            "metrics": {"train_loss": 1.0 / step},
            "result_files": [f"file-{cid}"],
        }

    api.get("fine_tuning/jobs/ftjob-1/checkpoints").respond(
        json={"object": "list", "data": [cp("c30", 30), cp("c10", 10), cp("c20", 20)]}
    )
    checkpoints = await client.list_checkpoints("ftjob-1")
    assert [c.step_number for c in checkpoints] == [10, 20, 30]
    assert checkpoints[0].result_files == ["file-c10"]


async def test_checkpoint_files_have_clean_names(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    from client import Checkpoint
    from tests.client.conftest import file_json

    api.get("files/f1").respond(
        json=file_json("f1", filename="ftjob-1/step-10/adapter.safetensors")
    )
    api.get("files/f2").respond(json=file_json("f2", filename="adapter_config.json"))
    files = await client.checkpoint_files(Checkpoint(id="c", result_files=["f1", "f2"]))
    assert [f.clean_filename for f in files] == ["adapter.safetensors", "adapter_config.json"]


async def test_list_models(client: NebiusClient, api: respx.MockRouter) -> None:
    api.get("models").respond(
        json={
            "object": "list",
            "data": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "object": "model", "created": 1}],
        }
    )
    models = await client.list_models()
    assert models[0].id == "meta-llama/Llama-3.1-8B-Instruct" and models[0].owned_by is None
