"""Costs through Bolt: the form opened from a file's button says what that file would cost,
and `/finetune status` shows the card with the running cost and the estimate."""

from __future__ import annotations

import json

import respx

from bot.blocks import Actions
from tests.bot.conftest import remember_checked_upload
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SlackHarness


async def test_the_form_from_a_files_button_shows_its_estimate(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_api.get("models").respond(json={"data": [{"id": "meta-llama/Llama-3.1-8B-Instruct"}]})
    await remember_checked_upload(harness.bot.store)
    await harness.click(Actions.FINETUNE_WITH_FILE, "F1")
    (opened,) = fake_slack.calls_to("views.open")
    notes = [
        e["text"]
        for b in opened.args["view"]["blocks"]
        if b["type"] == "context"
        for e in b["elements"]
    ]
    (cost,) = [n for n in notes if "Estimated cost" in n]
    assert "300,000 tokens × 3 epochs" in cost
    assert "models under 20B parameters: ≈ $0.36" in cost and "and more: ≈ $2.52" in cost


async def test_the_status_card_shows_the_running_cost_and_the_estimate(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    await remember_checked_upload(harness.bot.store)
    nebius_api.get("https://nebius.test/v0/models").respond(json=[])
    nebius_api.get("fine_tuning/jobs/ftjob-1").respond(
        json={
            "id": "ftjob-1",
            "status": "running",
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "training_file": "file-train",
            "hyperparameters": {"n_epochs": 3},
            "trained_steps": 10,
            "total_steps": 30,
            "trained_tokens": 300_000,
        }
    )
    await harness.command("status ftjob-1")
    (card,) = fake_slack.ephemerals_for("U1")
    shown = json.dumps(card["blocks"], ensure_ascii=False)
    assert "*Cost:* $0.12 so far (300,000 trained tokens; ≈ $0.36 in all at this rate)" in shown
    assert "estimate ≈ $0.36 (300k tokens × 3 epochs at $0.40 per million" in shown
