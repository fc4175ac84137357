"""`/finetune ...` through Bolt: answers, refusals, Nebius errors."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from bot.blocks import Actions
from tests.bot.conftest import NEBIUS_KEY, HarnessFactory
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SlackHarness
from tests.client.nebius_objects import JOB_ID, nebius_job

JOB = {
    "id": "ftjob-1",
    "object": "fine_tuning.job",
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "created_at": 1700000000,
    "status": "running",
    "training_file": "file-1",
    "hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate": 1e-5},
    "trained_steps": 5,
    "total_steps": 20,
}


def answer(fake: FakeSlack, user: str = "U1") -> str:
    (eph,) = fake.ephemerals_for(user)
    return eph["text"] + json.dumps(eph.get("blocks") or [])


async def test_the_command_is_acknowledged_with_an_empty_200(harness: SlackHarness) -> None:
    response = await harness.command("help")
    assert response.status_code == 200
    assert response.text == ""


async def test_help_answers_only_the_user_with_the_usage(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    await harness.command("help")
    text = answer(fake_slack)
    assert "/finetune create model=M training=FILE" in text
    assert "/finetune cancel JOB" in text
    assert fake_slack.calls_to("chat.postMessage") == []


async def test_an_unknown_word_gets_the_usage_and_says_which_word(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    await harness.command("frobnicate now")
    text = answer(fake_slack)
    assert "I don't know `frobnicate`" in text
    assert "/finetune help" in text


async def test_a_job_command_without_a_job_id_says_so(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    await harness.command("status")
    assert "`status` needs a job id" in answer(fake_slack)


async def test_status_shows_the_job_card(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    route = nebius_api.get("fine_tuning/jobs/ftjob-1").respond(json=JOB)
    await harness.command("status ftjob-1")

    text = answer(fake_slack)
    assert route.called
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {NEBIUS_KEY}"
    assert "ftjob-1" in text and ":gear: running" in text
    assert "step 5 of 20 (25%)" in text
    assert "n_epochs=3" in text


async def test_status_of_a_nebius_job_posts_its_card(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    # Nebius's own job object: hyperparameters under `method`, no `fine_tuned_model`.
    nebius_api.get(f"fine_tuning/jobs/{JOB_ID}").respond(json=nebius_job("succeeded"))
    await harness.command(f"status {JOB_ID}")
    (eph,) = fake_slack.ephemerals_for("U1")
    blocks = json.dumps(eph["blocks"]) if isinstance(eph["blocks"], list) else eph["blocks"]
    assert "n_epochs=5, batch_size=32" in blocks
    assert "None" not in blocks and "Fine-tuned model" not in blocks


async def test_models_lists_nebius_models(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_api.get("models").respond(
        json={"object": "list", "data": [{"id": "model-b"}, {"id": "model-a"}]}
    )
    nebius_api.get("https://nebius.test/v0/models").respond(json=[])  # no custom models
    await harness.command("models")
    text = answer(fake_slack)
    assert text.index("model-a") < text.index("model-b")


@pytest.mark.parametrize("listed", ["newest first (OpenAI, engine)", "oldest first (Nebius)"])
async def test_events_are_shown_oldest_first(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, listed: str
) -> None:
    newest_first = [
        {"id": "ev-2", "created_at": 1700000100, "level": "info", "message": "step 10"},
        {"id": "ev-1", "created_at": 1700000000, "level": "info", "message": "started"},
    ]
    data = newest_first if listed.startswith("newest") else newest_first[::-1]
    nebius_api.get("fine_tuning/jobs/ftjob-1/events").respond(
        json={"object": "list", "data": data, "has_more": False}
    )
    await harness.command("events ftjob-1")
    text = answer(fake_slack)
    assert text.index("started") < text.index("step 10")


async def test_a_nebius_error_is_explained_without_a_traceback_or_the_key(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_api.get("fine_tuning/jobs/nope").respond(
        404, json={"error": {"message": "Job nope not found", "type": "not_found"}}
    )
    await harness.command("status nope")
    text = answer(fake_slack)
    assert "Job nope not found" in text
    assert "check the id" in text
    assert "Traceback" not in text and NEBIUS_KEY not in text


async def test_without_a_nebius_key_job_commands_say_what_to_set(
    harness_factory: HarnessFactory, fake_slack: FakeSlack
) -> None:
    harness = harness_factory()
    harness.bot.commands.nebius = None
    await harness.command("list")
    assert "NEBIUS_API_KEY" in answer(fake_slack)


async def test_cancel_asks_for_confirmation_first(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_api.get("fine_tuning/jobs/ftjob-1").respond(json=JOB)
    cancel = nebius_api.post("fine_tuning/jobs/ftjob-1/cancel").respond(
        json={**JOB, "status": "cancelled"}
    )
    await harness.command("cancel ftjob-1")

    (eph,) = fake_slack.ephemerals_for("U1")
    (button,) = [e for b in eph["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == Actions.CANCEL_JOB and button["value"] == "ftjob-1"
    assert button["confirm"]["confirm"]["text"] == "Cancel job"
    assert not cancel.called  # nothing happens until the button is confirmed


async def test_confirming_cancel_cancels_and_updates_the_card(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    from bot.blocks.jobs import job_card_message
    from client import Job

    cancel = nebius_api.post("fine_tuning/jobs/ftjob-1/cancel").respond(
        json={**JOB, "status": "cancelled"}
    )
    card = await harness.slack.chat.post("C1", job_card_message(Job.model_validate(JOB)))
    await harness.click(Actions.CANCEL_JOB, "ftjob-1", message_ts=card.ts)

    assert cancel.called
    assert "cancelled" in fake_slack.messages[("C1", card.ts)].text
    # The cancelled card has no Cancel button left; it offers Retry instead.
    updated = fake_slack.messages[("C1", card.ts)]
    ids = [e["action_id"] for b in updated.blocks if b["type"] == "actions" for e in b["elements"]]
    assert ids == [
        Actions.REFRESH_JOB,
        Actions.SHOW_CHART,
        Actions.RETRY_JOB,
        Actions.EDIT_AND_RETRY,
    ]
    assert "asked Nebius to cancel job `ftjob-1`" in answer(fake_slack)


async def test_a_user_off_the_allowlist_may_not_cancel_and_is_told_why(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    harness = harness_factory(allowed_users=frozenset({"UADMIN"}))
    cancel = nebius_api.post("fine_tuning/jobs/ftjob-1/cancel").respond(json=JOB)

    await harness.command("cancel ftjob-1", user="UOTHER")
    await harness.click(Actions.CANCEL_JOB, "ftjob-1", user="UOTHER")

    assert not cancel.called
    refusals = fake_slack.ephemerals_for("UOTHER")
    assert len(refusals) == 2
    assert all("not on this bot's list" in r["text"] for r in refusals)


async def test_anyone_may_read_status_despite_the_allowlist(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    harness = harness_factory(allowed_users=frozenset({"UADMIN"}))
    nebius_api.get("fine_tuning/jobs/ftjob-1").respond(json=JOB)
    await harness.command("status ftjob-1", user="UOTHER")
    assert "ftjob-1" in answer(fake_slack, "UOTHER")


async def test_refresh_updates_the_card_in_place(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    from bot.blocks.jobs import job_card_message
    from client import Job

    card = await harness.slack.chat.post("C1", job_card_message(Job.model_validate(JOB)))
    nebius_api.get("fine_tuning/jobs/ftjob-1").respond(
        json={**JOB, "status": "succeeded", "trained_steps": 20, "finished_at": 1700003600}
    )
    await harness.click(Actions.REFRESH_JOB, "ftjob-1", message_ts=card.ts)

    message = fake_slack.messages[("C1", card.ts)]
    assert message.updates == 1
    assert ":white_check_mark: succeeded" in json.dumps(message.blocks)
    assert "2023-11-14 23:13 UTC" in json.dumps(message.blocks)


async def test_mentioning_the_bot_answers_in_the_thread(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    await harness.event(
        {"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UBOT>", "ts": "17.1"}
    )
    (reply,) = fake_slack.thread("C1", "17.1")
    assert "/finetune help" in reply.text


async def test_nebius_is_called_with_the_key_and_never_echoes_it(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_api.get("fine_tuning/jobs").respond(
        json={"object": "list", "data": [JOB], "has_more": False}
    )
    await harness.command("list")
    assert isinstance(nebius_api.calls.last.request, httpx.Request)
    for call in fake_slack.calls:
        assert NEBIUS_KEY not in json.dumps(call.args)


async def test_the_guard_checks_permission_then_nebius_then_the_job_id(
    harness_factory: HarnessFactory, fake_slack: FakeSlack
) -> None:
    harness = harness_factory(allowed_users=frozenset({"UADMIN"}))
    nebius = harness.bot.commands.nebius
    harness.bot.commands.nebius = None
    # All three wrong: the permission is what the user hears about.
    await harness.command("cancel", user="UOTHER")
    assert "not on this bot's list" in answer(fake_slack, "UOTHER")
    # Allowed, but no Nebius: nothing a job id could change.
    await harness.command("cancel", user="UADMIN")
    harness.bot.commands.nebius = nebius
    await harness.command("cancel", user="UADMIN")
    no_nebius, no_job = fake_slack.ephemerals_for("UADMIN")
    assert "NEBIUS_API_KEY" in no_nebius["text"]
    assert "`cancel` needs a job id" in no_job["text"]
