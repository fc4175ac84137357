"""The job messages (`bot.blocks.jobs`) of Nebius's own job objects: no `fine_tuned_model`,
hyperparameters under `method`, `ftckpt_` checkpoints whose metrics include nulls, jobs that
start `running`."""

from __future__ import annotations

import json

from bot.blocks.jobs import checkpoints_message, job_card_message, job_summary_message
from client import Checkpoint, Job
from tests.client.nebius_objects import (
    CHECKPOINT_IDS,
    JOB_ID,
    nebius_checkpoints,
    nebius_job,
)


def rendered(message: object) -> str:
    return json.dumps(message.blocks) + message.text  # type: ignore[attr-defined]


def checkpoints() -> list[Checkpoint]:
    items = [Checkpoint.model_validate(c) for c in nebius_checkpoints()["data"]]
    return sorted(items, key=lambda c: c.step_number)


def test_the_card_of_a_nebius_job_shows_its_method_hyperparameters() -> None:
    job = Job.model_validate(nebius_job("running"))
    card = job_card_message(job)
    text = card.blocks[0]["text"]["text"]
    assert (
        "*Hyperparameters:* n_epochs=5, batch_size=32, learning_rate=2e-05, lora=True, "
        "context_length=8192"
    ) in text
    assert ":gear: running" in text and "step 12 of 40 (30%)" in text
    assert "Fine-tuned model" not in text and "None" not in rendered(card)
    assert card.metadata == {"job_id": JOB_ID, "kind": "card"}


def test_the_summary_of_a_nebius_job_without_a_fine_tuned_model() -> None:
    job = Job.model_validate(nebius_job("succeeded"))
    summary = job_summary_message(job, checkpoints(), "U1")
    head = summary.blocks[0]["text"]["text"]
    assert head.startswith(f":white_check_mark: <@U1> job `{JOB_ID}` succeeded.")
    assert "Model:" not in head
    body = rendered(summary)
    assert "None" not in body and "null" not in body
    steps = [b for b in summary.blocks if b.get("accessory")]
    assert [b["accessory"]["value"] for b in steps] == [f"{JOB_ID}:{c}" for c in CHECKPOINT_IDS]
    # Metrics Nebius left null are left out; measured ones are shown.
    assert "valid_loss" not in steps[0]["text"]["text"]
    assert "valid_loss=1.02" in steps[1]["text"]["text"]


def test_the_checkpoint_list_of_a_nebius_job() -> None:
    message = checkpoints_message(JOB_ID, checkpoints())
    body = rendered(message)
    assert CHECKPOINT_IDS[0] in body and "Step 40" in body
    assert "None" not in body
