"""`/finetune compare` in the console, with Nebius mocked by respx: the same progress message,
table and examples as in Slack, as terminal text."""

from __future__ import annotations

import json

import httpx
import respx

from bot.backends import Backends
from tests.bot.console.conftest import run

CHECKPOINT_MODEL = "tiny-model:ft-1:ckpt-step-3"
VALIDATION = b"".join(
    json.dumps(
        {"messages": [{"role": "user", "content": f"Say {n}"}, {"role": "assistant", "content": n}]}
    ).encode()
    + b"\n"
    for n in ("one", "two", "three")
)


def engine_like_job(nebius: respx.Router) -> list[dict]:
    """A job on a server that names fine-tuned models (the local engine); returns the bodies
    of the chat completions asked for."""
    nebius.get("fine_tuning/jobs/ftjob-1").respond(
        json={
            "id": "ftjob-1",
            "object": "fine_tuning.job",
            "model": "tiny-model",
            "status": "succeeded",
            "training_file": "file-train",
            "validation_file": "file-val",
            "fine_tuned_model": "tiny-model:ft-1",
        }
    )
    nebius.get("fine_tuning/jobs/ftjob-1/checkpoints").respond(
        json={
            "data": [
                {
                    "id": "ftckpt-3",
                    "step_number": 3,
                    "metrics": {"valid_loss": 1.1},
                    "fine_tuned_model_checkpoint": CHECKPOINT_MODEL,
                }
            ]
        }
    )
    nebius.get("files/file-val").respond(
        json={"id": "file-val", "filename": "held-out.jsonl", "bytes": len(VALIDATION)}
    )
    nebius.get("files/file-val/content").respond(content=VALIDATION)
    asked: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        asked.append(body)
        said = body["messages"][-1]["content"].removeprefix("Say ")
        text = said if body["model"] == CHECKPOINT_MODEL else f"I would rather not say {said}."
        return httpx.Response(
            200,
            json={
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ]
            },
        )

    nebius.post("chat/completions").mock(side_effect=answer)
    return asked


async def test_compare_in_the_console_shows_progress_the_table_and_the_examples(
    backends: Backends, nebius: respx.Router
) -> None:
    asked = engine_like_job(nebius)
    code, text = await run(backends, "/finetune compare ftjob-1 max_tokens=16")
    assert code == 0, text
    # The best checkpoint's model against the base model, each with the limit asked for.
    assert sorted(b["model"] for b in asked) == sorted([CHECKPOINT_MODEL, "tiny-model"] * 3)
    assert {b["max_tokens"] for b in asked} == {16} and {b["temperature"] for b in asked} == {0}
    # A thread of its own (the job is not followed here), its progress message with Cancel.
    assert "asked to compare job ftjob-1's fine-tuned model with its base model" in text
    assert "Comparing tiny-model:ft-1:ckpt-step-3 (fine-tuned: best checkpoint: step 3" in text
    assert "on 3 examples of held-out.jsonl: 0 of 6 answers (0%)." in text
    assert "[1] Cancel" in text
    # Then the same message, ended, and the results.
    assert "✅ Compared tiny-model:ft-1:ckpt-step-3" in text
    assert "Compare on 3 examples of held-out.jsonl" in text
    assert "#1 (line 1)" in text and "prompt: Say one" in text
    assert text.index("0 of 6 answers") < text.index("Compare on 3 examples")


async def test_compare_in_the_console_says_what_is_wrong_with_the_command(
    backends: Backends, nebius: respx.Router
) -> None:
    engine_like_job(nebius)
    code, text = await run(backends, "/finetune compare\n/finetune compare ftjob-1 a.jsonl b.jsonl")
    assert code == 0
    assert "compare needs a job id." in text
    assert "compare takes a job id and at most one file, got 3 words" in text
