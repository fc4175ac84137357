"""The summary marks the best checkpoint with the reason and says how far the validation loss
moved from the base model's where the server gives that figure (and nothing where it does
not); the card and the summary carry the cost, with a price on Nebius and free on the engine."""

from __future__ import annotations

import json

from bot.blocks.cost import form_cost_text
from bot.blocks.jobs import job_card_message, job_starting_message, job_summary_message
from client import Checkpoint, Job
from client.cost import estimate, free_price, job_cost, price_for

JOB = {
    "id": "ftjob-1",
    "status": "succeeded",
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "hyperparameters": {"n_epochs": 3, "lora": True},
    "trained_tokens": 780_000,
}


def checkpoints(*losses: float | None, base: float | None = None) -> list[Checkpoint]:
    made = []
    for n, loss in enumerate(losses, start=1):
        metrics: dict = {"train_loss": 2.0 - n / 10, "valid_loss": loss}
        if base is not None:
            metrics["base_valid_loss"] = base
        made.append(
            Checkpoint.model_validate({"id": f"cp-{n}", "step_number": n * 10, "metrics": metrics})
        )
    return made


def text(message) -> str:
    return json.dumps(message.blocks, ensure_ascii=False)


def line_of(message, checkpoint_id: str) -> str:
    (block,) = [
        b for b in message.blocks if f"`{checkpoint_id}`:" in b.get("text", {}).get("text", "")
    ]
    return block["text"]["text"]


def test_the_lowest_validation_loss_is_marked_best_with_the_reason() -> None:
    summary = job_summary_message(Job.model_validate(JOB), checkpoints(3.55, 3.51, 3.53), "U1")
    assert "*best* (lowest validation loss)" in line_of(summary, "cp-2")
    assert "best" not in line_of(summary, "cp-3") and "best" not in line_of(summary, "cp-1")
    # The Deploy button deploys that one.
    assert '"value": "ftjob-1:cp-2"' in text(summary)


def test_without_validation_losses_the_last_one_is_best_and_says_why() -> None:
    summary = job_summary_message(Job.model_validate(JOB), checkpoints(None, None), "U1")
    assert "the last one: no validation loss to choose by" in line_of(summary, "cp-2")


def test_the_base_models_figure_gives_the_change_at_the_best_epoch() -> None:
    # The local engine's way: the job (and each checkpoint) carries base_valid_loss.
    job = Job.model_validate({**JOB, "base_valid_loss": 3.57})
    summary = job_summary_message(job, checkpoints(3.60, 3.55, 3.51), "U1")
    assert "validation loss 3.57 → 3.51 (\u22121.7 %) at epoch 3" in text(summary)

    from_metrics = job_summary_message(
        Job.model_validate(JOB), checkpoints(3.52, 3.6, base=3.57), "U1"
    )
    # Two checkpoints of a 3-epoch job: the step, not a guessed epoch.
    assert "validation loss 3.57 → 3.52 (\u22121.4 %) at step 10" in text(from_metrics)


def test_nebius_gives_no_base_figure_and_nothing_is_guessed() -> None:
    summary = job_summary_message(Job.model_validate(JOB), checkpoints(3.6, 3.5), "U1")
    assert "→" not in text(summary) and "%" not in text(summary)


def test_the_card_and_summary_show_a_price_on_nebius() -> None:
    job = Job.model_validate({**JOB, "status": "running", "trained_steps": 5, "total_steps": 20})
    price = price_for(job.model or "")
    guess = estimate(price, 300_000, 3)
    from bot.blocks.cost import JobCosts

    costs = JobCosts(guess, job_cost(price, job, guess.tokens))
    card = job_card_message(job, cost=costs.card_text())
    assert "*Cost:* $0.31 so far (780,000 trained tokens" in text(card)
    assert "estimate ≈ $0.36 (300k tokens × 3 epochs at $0.40 per million" in text(card)

    done = Job.model_validate(JOB)
    final = JobCosts(guess, job_cost(price, done, guess.tokens))
    summary = job_summary_message(done, checkpoints(1.2), "U1", cost=final.summary_text())
    assert "*Cost:* $0.31 (780,000 trained tokens)" in text(summary)
    assert "estimate" not in final.summary_text()


def test_on_the_local_engine_training_is_free_and_says_so() -> None:
    job = Job.model_validate(JOB)
    price = free_price(job.model or "")
    from bot.blocks.cost import JobCosts, start_cost_text

    costs = JobCosts(estimate(price, 300_000, 3), job_cost(price, job))
    assert "*Cost:* free on the local engine" in text(job_card_message(job, cost=costs.card_text()))
    assert costs.summary_text() == "free on the local engine"
    assert (
        start_cost_text(estimate(price, 300_000, 3)) == "Estimated cost: free on the local engine"
    )
    assert form_cost_text(True, []) == ":moneybag: Estimated cost: free on the local engine."


def test_the_first_message_of_an_inline_create_has_the_estimate() -> None:
    from types import SimpleNamespace

    from bot.blocks.cost import start_cost_text

    plan = SimpleNamespace(model="m-8B", training=SimpleNamespace(name="t.jsonl"), validation=None)
    guess = estimate(price_for("m-8B"), 1_000_000, 2)
    message = job_starting_message(plan, "U1", estimate=start_cost_text(guess))
    assert "Estimated cost: ≈ $0.80 (1M tokens × 2 epochs at $0.40 per million" in text(message)
