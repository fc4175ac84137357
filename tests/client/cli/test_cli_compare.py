"""`finetune compare JOB [FILE]` against a mocked Nebius: the job's validation file and active
deployment found by themselves, the table and examples on stdout, progress on stderr, JSON for
machines, and clear messages (never a traceback) when something is missing."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from tests.client.cli.conftest import run
from tests.client.conftest import HOST_URL
from tests.client.nebius_objects import (
    CHECKPOINT_IDS,
    JOB_ID,
    VALIDATION_FILE,
    nebius_checkpoint,
    nebius_file,
    nebius_job,
)

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "sample_validation_data.jsonl"
FULL_NAME = "meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:demo-run-JuNN"
INFERENCE_BASE = "meta-llama/Meta-Llama-3.1-8B-Instruct"
REFERENCES = {
    json.dumps(json.loads(line)["messages"][:-1]): json.loads(line)["messages"][-1]["content"]
    for line in SAMPLES.read_text().splitlines()
}


@pytest.fixture
def api_root() -> str:
    return HOST_URL  # the deployments under /v0 as well as the /v1 calls


def chat(request: httpx.Request) -> httpx.Response:
    """The deployment answers each prompt's reference; the base model answers prose."""
    body = json.loads(request.content)
    reference = REFERENCES[json.dumps(body["messages"])]
    text = reference if body["model"] == FULL_NAME else "A nicer picture, in words."
    return httpx.Response(
        200,
        json={
            "choices": [
                {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 90, "completion_tokens": len(text) // 4},
        },
    )


def nebius_with_a_deployed_job(api: respx.MockRouter, **job: object) -> respx.Route:
    api.get(f"v1/fine_tuning/jobs/{JOB_ID}").respond(json=nebius_job("succeeded", **job))
    api.get(f"v1/fine_tuning/jobs/{JOB_ID}/checkpoints").respond(
        json={"data": [nebius_checkpoint(1, 40, 1.402), nebius_checkpoint(0, 20, 1.318)]}
    )
    api.get("v0/models").respond(
        json=[
            {
                "name": FULL_NAME,
                "status": "active",
                "base_model": INFERENCE_BASE,
                "source": f"{JOB_ID}:{CHECKPOINT_IDS[0]}",
            }
        ]
    )
    api.get(f"v1/files/{VALIDATION_FILE}").respond(
        json=nebius_file(VALIDATION_FILE, "xgenlens/validation.jsonl")
    )
    api.get(f"v1/files/{VALIDATION_FILE}/content").respond(content=SAMPLES.read_bytes())
    return api.post("v1/chat/completions").mock(side_effect=chat)


def test_compare_finds_the_deployment_and_validation_file_and_prints_the_table(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    chats = nebius_with_a_deployed_job(api)

    code, out, err = run(capsys, "compare", JOB_ID, "--examples", "1")

    assert code == 0, err
    assert chats.call_count == 10
    sent = {json.loads(c.request.content)["model"] for c in chats.calls}
    assert sent == {FULL_NAME, INFERENCE_BASE}  # the base as Nebius serves it for chat
    assert "Compare on 5 examples of validation.jsonl" in out
    assert f"fine-tuned: {FULL_NAME}" in out and f"base: {INFERENCE_BASE}" in out
    assert "5/5 100%" in out and "0/5 0%" in out
    assert "#1 (line 1)" in out and "#2" not in out
    assert f"deployment {FULL_NAME}" in err and "compare: 10/10 answers" in err


def test_compare_json_and_a_local_file_with_a_limit(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    chats = nebius_with_a_deployed_job(api)
    content = api.get(f"v1/files/{VALIDATION_FILE}/content")

    code, out, _ = run(
        capsys, "compare", JOB_ID, str(SAMPLES), "--limit", "2", "--concurrency", "1", "--json"
    )

    assert code == 0
    result = json.loads(out)
    assert (result["total"], result["completed"], result["cancelled"]) == (2, 2, False)
    tuned = next(s for s in result["summaries"] if s["label"] == "fine-tuned")
    assert tuned["chrf"] == 100.0 and tuned["shape_share"] == 1.0
    assert chats.call_count == 4
    assert content.call_count == 0  # FILE given: the job's validation file is not read


@pytest.mark.parametrize(
    ("argv", "job", "message"),
    [
        ([], {"validation_file": None}, "has no validation file: give a chat JSONL file"),
        (["missing.jsonl"], {}, "missing.jsonl: no such file"),
        (["--limit", "0"], {}, "--limit must be at least 1"),
        (["--concurrency", "99"], {}, "concurrency must be 1–16"),
    ],
)
def test_what_is_missing_is_said_with_exit_2(
    api: respx.MockRouter,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    job: dict[str, object],
    message: str,
) -> None:
    chats = nebius_with_a_deployed_job(api, **job)
    code, _, err = run(capsys, "compare", JOB_ID, *argv)
    assert code == 2 and message in err
    assert chats.call_count == 0


def test_a_job_without_deployment_says_how_to_get_one(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    nebius_with_a_deployed_job(api)
    api.get("v0/models").respond(json=[])
    code, _, err = run(capsys, "compare", JOB_ID)
    assert code == 2
    assert f"finetune deploy {JOB_ID}" in err and "--model" in err


def test_a_bad_line_in_the_file_is_named(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nebius_with_a_deployed_job(api)
    path = tmp_path / "mine.jsonl"
    path.write_text(SAMPLES.read_text().splitlines()[0] + "\n{oops\n")
    code, _, err = run(capsys, "compare", JOB_ID, str(path))
    assert code == 2 and "mine.jsonl:2: not valid JSON" in err


def test_a_model_the_server_does_not_have_stops_with_its_name(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    nebius_with_a_deployed_job(api)

    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["model"] == "nobody/nothing":
            return httpx.Response(404, json={"detail": "The model 'nobody/nothing' does not exist"})
        return chat(request)

    api.post("v1/chat/completions").mock(side_effect=answer)
    code, out, err = run(capsys, "compare", JOB_ID, "--model", "nobody/nothing")
    assert code == 1 and out == ""
    assert "error: 404 the fine-tuned model 'nobody/nothing' cannot be used: The model" in err
