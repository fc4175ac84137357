"""`finetune deploy`, `deployments`, `undeploy` and `chat` against a mocked Nebius: the best
checkpoint by default, the inference base id, progress on stderr, the full name on stdout,
a question before deleting, tokens as they come."""

from __future__ import annotations

import io
import json

import httpx
import pytest
import respx

from tests.client.cli.conftest import run
from tests.client.conftest import HOST_URL
from tests.client.nebius_objects import (
    CHECKPOINT_IDS,
    HYPERPARAMETERS,
    JOB_ID,
    nebius_checkpoint,
    nebius_job,
)

FULL_NAME = "meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:support-bot-JuNN"
PATH = f"/v0/models/{FULL_NAME}"
INFERENCE_BASE = "meta-llama/Meta-Llama-3.1-8B-Instruct"


@pytest.fixture
def api_root() -> str:
    return HOST_URL  # deployments live under /v0, beside the /v1 calls


def nebius_with_a_finished_job(api: respx.MockRouter, **job: object) -> None:
    """A succeeded LoRA job whose best checkpoint (step 20, valid loss 1.318) is not its
    last one (step 40, valid loss 1.402)."""
    api.get(f"v1/fine_tuning/jobs/{JOB_ID}").respond(json=nebius_job("succeeded", **job))
    api.get(f"v1/fine_tuning/jobs/{JOB_ID}/checkpoints").respond(
        json={"data": [nebius_checkpoint(1, 40, 1.402), nebius_checkpoint(0, 20, 1.318)]}
    )


def deployment(status: str | None = "active", **fields: object) -> dict[str, object]:
    answer: dict[str, object] = {"name": FULL_NAME, "created_at": 1765431401}
    if status is not None:
        answer["status"] = status
    answer.update(fields)
    return answer


def test_deploy_takes_the_best_checkpoint_waits_and_prints_the_full_name(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    nebius_with_a_finished_job(api)
    post = api.post("v0/models").respond(json=deployment("validating"))
    api.get(path=PATH).mock(
        side_effect=[
            httpx.Response(200, json=deployment(None)),  # the first answer has no status
            httpx.Response(200, json=deployment("validating")),
            httpx.Response(200, json=deployment("active")),
        ]
    )
    code, out, err = run(capsys, "deploy", JOB_ID, "--name", "support-bot", "--no-progress")

    assert code == 0, err
    assert out == f"{FULL_NAME}\n"  # stdout: only the name Nebius generated
    sent = json.loads(post.calls.last.request.content)
    assert sent == {
        "name": "support-bot",
        "base_model": INFERENCE_BASE,  # the fine-tuning id mapped to the inference one
        "source": f"{JOB_ID}:{CHECKPOINT_IDS[0]}",  # step 20, not the last
    }
    assert "best checkpoint: step 20, valid loss 1.318" in err
    assert f"{FULL_NAME}: validating (" in err and f"{FULL_NAME}: active" in err
    assert f"finetune chat {FULL_NAME}" in err


def test_deploy_a_chosen_step_onto_a_base_the_user_names(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    nebius_with_a_finished_job(api)
    post = api.post("v0/models").respond(json=deployment("validating"))
    api.get(path=PATH).respond(json=deployment("active"))
    code, out, _ = run(
        capsys, "deploy", JOB_ID, "40", "--base-model", "custom/base", "--json", "--no-progress"
    )
    assert code == 0
    sent = json.loads(post.calls.last.request.content)
    assert sent["base_model"] == "custom/base"
    assert sent["source"] == f"{JOB_ID}:{CHECKPOINT_IDS[1]}"
    assert sent["name"] == "demo-run-49b46256-step40"  # nobody named it
    report = json.loads(out)
    assert report["name"] == FULL_NAME and report["status"] == "active"
    assert report["checkpoint"] == {
        "id": CHECKPOINT_IDS[1],
        "step": 40,
        "valid_loss": 1.402,
        "chosen_by": "step",
    }


def test_a_full_fine_tune_is_refused_before_any_deploy_call(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    hyperparameters = HYPERPARAMETERS | {"lora": False}
    full = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
    nebius_with_a_finished_job(api, method=full)
    post = api.post("v0/models").respond(json=deployment("validating"))
    code, out, err = run(capsys, "deploy", JOB_ID)
    assert code == 2 and out == ""
    assert "full fine-tune" in err and f"finetune download {JOB_ID}" in err and "--lora" in err
    assert post.call_count == 0


def test_a_deployment_nebius_cannot_validate_says_why(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    nebius_with_a_finished_job(api)
    api.post("v0/models").respond(json=deployment("validating"))
    reason = "base model meta-llama/Meta-Llama-3.1-8B-Instruct does not serve LoRA adapters"
    api.get(path=PATH).respond(json=deployment("error", status_reason=reason))
    code, _, err = run(capsys, "deploy", JOB_ID, "--no-progress")
    assert code == 1 and reason in err and "hint:" in err


def test_deploy_an_unknown_checkpoint_lists_the_ones_there_are(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    nebius_with_a_finished_job(api)
    code, _, err = run(capsys, "deploy", JOB_ID, "99")
    assert code == 2 and "no checkpoint '99'" in err and f"{CHECKPOINT_IDS[0]} (step 20)" in err


def test_deployments_lists_them_or_shows_one(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("v0/models").respond(
        json=[
            deployment("active", base_model=INFERENCE_BASE, job_id=JOB_ID, checkpoint_id="c"),
            deployment(None, name="Qwen/Qwen3-4B-fast-LoRa:grammar-checker-WpCf"),
        ]
    )
    code, out, _ = run(capsys, "deployments")
    rows = out.splitlines()
    assert code == 0 and rows[0].split() == ["NAME", "STATUS", "BASE", "MODEL", "SOURCE", "CREATED"]
    assert rows[1].split()[:4] == [FULL_NAME, "active", INFERENCE_BASE, f"{JOB_ID}:c"]
    assert rows[2].split()[:2] == ["Qwen/Qwen3-4B-fast-LoRa:grammar-checker-WpCf", "validating"]

    api.get(path=PATH).respond(json=deployment("error", status_reason="adapter too large"))
    code, out, _ = run(capsys, "deployments", FULL_NAME)
    assert code == 0 and "status:       error" in out and "reason:       adapter too large" in out


def test_no_deployments_says_how_to_make_one(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("v0/models").respond(json=[])
    code, out, err = run(capsys, "deployments")
    assert code == 0 and out == "" and "finetune deploy JOB" in err


@pytest.mark.parametrize("answer", ["n\n", "\n", ""], ids=["no", "enter", "end of input"])
def test_undeploy_asks_and_anything_but_yes_keeps_the_model(
    api: respx.MockRouter,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
) -> None:
    api.get(path=PATH).respond(json=deployment("active", source=f"{JOB_ID}:c"))
    delete = api.delete(path=PATH).respond(json={"status": "deleted"})
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    code, out, err = run(capsys, "undeploy", FULL_NAME)
    assert code == 0 and out == "" and delete.call_count == 0
    assert f"Delete custom model {FULL_NAME} (active, from {JOB_ID}:c)?" in err
    assert f"kept {FULL_NAME}" in err


def test_undeploy_deletes_when_the_answer_is_yes_or_with_yes(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api.get(path=PATH).respond(json=deployment("active"))
    delete = api.delete(path=PATH).respond(json=deployment("deleted"))
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    code, out, err = run(capsys, "undeploy", FULL_NAME)
    assert (code, out) == (0, f"{FULL_NAME}: deleted\n") and "[y/N]" in err
    assert delete.call_count == 1

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # --yes reads nothing
    code, out, err = run(capsys, "undeploy", FULL_NAME, "--yes")
    assert (code, out) == (0, f"{FULL_NAME}: deleted\n") and "[y/N]" not in err
    assert delete.call_count == 2


def test_undeploy_an_unknown_name_says_so_without_asking(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get(path="/v0/models/nope").respond(404, json={"detail": "Model not found"})
    code, _, err = run(capsys, "undeploy", "nope")
    assert code == 1 and "404 Model not found" in err and "finetune deployments" in err
    assert "[y/N]" not in err


def test_chat_streams_the_answer_with_the_system_message(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    def chunk(text: str, finish: str | None = None) -> str:
        choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
        return "data: " + json.dumps({"choices": [choice]}) + "\n\n"

    body = chunk("Bonjour") + chunk(" !", "length") + "data: [DONE]\n\n"
    route = api.post("v1/chat/completions").respond(
        content=body.encode(), headers={"Content-Type": "text/event-stream"}
    )
    code, out, err = run(capsys, "chat", FULL_NAME, "Hello", "--system", "Answer in French")
    assert (code, out) == (0, "Bonjour !\n")
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == FULL_NAME and sent["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in French"},
        {"role": "user", "content": "Hello"},
    ]
    assert "--max-tokens" in err  # cut off at the token limit: says how to get more


def test_chat_whole_answer_and_json(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    message = {"role": "assistant", "content": "Hi"}
    answer = {"choices": [{"message": message, "finish_reason": "stop"}]}
    route = api.post("v1/chat/completions").respond(json=answer)
    code, out, _ = run(capsys, "chat", "m", "Hello", "--no-stream", "--max-tokens", "5")
    assert (code, out) == (0, "Hi\n")
    assert json.loads(route.calls.last.request.content)["max_tokens"] == 5
    assert "stream" not in json.loads(route.calls.last.request.content)

    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin"))
    code, out, _ = run(capsys, "chat", "m", "-", "--json")
    assert code == 0 and json.loads(out)["choices"][0]["message"]["content"] == "Hi"
    assert json.loads(route.calls.last.request.content)["messages"][-1]["content"] == "from stdin"


def test_chat_with_an_empty_prompt_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "chat", "m", "  ")
    assert code == 2 and "the prompt is empty" in err
