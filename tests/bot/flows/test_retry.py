"""Retry from the card: one new job with the same files and settings however often it is
clicked, the two jobs linked both ways; Edit and retry opens the form filled in."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx

from bot.blocks import Actions
from tests.bot.conftest import HarnessFactory
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SlackHarness

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
OLD = {
    "id": "ftjob-7",
    "model": MODEL,
    "created_at": 1700000000,
    "status": "validating_files",
    "training_file": "file-train",
}
NEW = {**OLD, "id": "ftjob-8", "created_at": 1700000600}
OOM = {"code": "out_of_memory", "message": "training ran out of memory", "param": None}


@pytest.fixture
def nebius(nebius_api: respx.Router, nebius_files: respx.Route) -> dict[str, respx.Route]:
    """Nebius: files processed at once; the first job created is ftjob-7, the next ftjob-8."""
    nebius_api.get("models").respond(
        json={"object": "list", "data": [{"id": MODEL, "object": "model"}]}
    )
    answers = iter([OLD, NEW, {**NEW, "id": "ftjob-9"}])
    create = nebius_api.post("fine_tuning/jobs").mock(
        side_effect=lambda request: httpx.Response(200, json=next(answers))
    )
    old = nebius_api.get("fine_tuning/jobs/ftjob-7").respond(
        json={**OLD, "status": "failed", "error": OOM}
    )
    return {"create": create, "old": old}


async def start_failed_job(harness: SlackHarness, valid_bytes: bytes) -> str:
    """ftjob-7, started through the bot with two epochs, then failed; its card's ts."""
    await harness.upload("train.jsonl", valid_bytes)
    await harness.command(f"create model={MODEL} training=train.jsonl epochs=2 suffix=lens")
    watch = await harness.bot.store.watch("ftjob-7")
    assert watch is not None
    return watch.thread_ts


@pytest.fixture
async def card_ts(harness: SlackHarness, nebius: dict[str, respx.Route], valid_bytes: bytes) -> str:
    """The card of ftjob-7, started through the bot and failed since (its ts)."""
    return await start_failed_job(harness, valid_bytes)


def bodies(route: respx.Route) -> list[dict]:
    return [json.loads(call.request.content) for call in route.calls]


def texts(fake: FakeSlack, ts: str) -> list[str]:
    return [m.text for m in fake.thread("C1", ts)]


async def test_a_double_click_on_retry_starts_one_job_with_the_same_settings(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: dict[str, respx.Route], card_ts: str
) -> None:
    await asyncio.gather(
        harness.click(Actions.RETRY_JOB, "ftjob-7", message_ts=card_ts),
        harness.click(Actions.RETRY_JOB, "ftjob-7", message_ts=card_ts),
    )
    await harness.click(Actions.RETRY_JOB, "ftjob-7", message_ts=card_ts)  # later, once more

    first, retry = bodies(nebius["create"])  # exactly one more job
    assert retry == first  # the same files and settings
    assert retry["hyperparameters"]["n_epochs"] == 2 and retry["suffix"] == "lens"
    notes = [e["text"] for e in fake_slack.ephemerals_for("U1")]
    assert len(notes) == 2 and all("retried already" in n for n in notes)
    assert "job `ftjob-8`" in notes[-1]


async def test_a_retry_and_its_job_are_linked_both_ways(
    harness: SlackHarness, fake_slack: FakeSlack, card_ts: str
) -> None:
    old_ts = card_ts
    await harness.click(Actions.RETRY_JOB, "ftjob-7", message_ts=old_ts)

    store = harness.bot.store
    assert await store.retries_of("ftjob-7") == ["ftjob-8"]
    new_plan = await store.job_plan("ftjob-8")
    assert new_plan is not None and new_plan.retry_of == "ftjob-7"
    new_ts = (await store.watch("ftjob-8")).thread_ts
    assert new_ts != old_ts
    # Each thread points at the other.
    assert any("retried job `ftjob-7` as job `ftjob-8`" in t for t in texts(fake_slack, old_ts))
    assert any(
        "`ftjob-8` is a retry of job `ftjob-7` with the same files and settings" in t
        for t in texts(fake_slack, new_ts)
    )
    # And each card names the other; the old one no longer offers Retry.
    old_card = json.dumps(fake_slack.messages[("C1", old_ts)].blocks)
    assert "*Retried as:* `ftjob-8`" in old_card and f'"{Actions.RETRY_JOB}"' not in old_card
    assert "*Why:* Training ran out of memory." in old_card
    new_card = json.dumps(fake_slack.messages[("C1", new_ts)].blocks)
    assert "*Retry of:* `ftjob-7`" in new_card


async def test_a_job_the_bot_did_not_start_cannot_be_retried_and_says_why(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: dict[str, respx.Route]
) -> None:
    await harness.click(Actions.RETRY_JOB, "ftjob-7")

    assert nebius["create"].call_count == 0
    (note,) = fake_slack.ephemerals_for("U1")
    assert "cannot be retried" in note["text"] and "no record of its files" in note["text"]
    # Nothing started: the claim is released, so it may be pressed again.
    assert await harness.bot.store.claim_request("retry:ftjob-7")


async def test_a_job_still_running_is_not_retried(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius: dict[str, respx.Route],
    nebius_api: respx.Router,
    card_ts: str,
) -> None:
    nebius_api.get("fine_tuning/jobs/ftjob-7").respond(json={**OLD, "status": "running"})

    await harness.click(Actions.RETRY_JOB, "ftjob-7", message_ts=card_ts)

    assert nebius["create"].call_count == 1
    (note,) = fake_slack.ephemerals_for("U1")
    assert "only a failed or cancelled job is retried" in note["text"]


async def test_retry_follows_the_allowlist(
    harness_factory: HarnessFactory, nebius: dict[str, respx.Route], valid_bytes: bytes
) -> None:
    harness = harness_factory(allowed_users={"U1"})
    card_ts = await start_failed_job(harness, valid_bytes)

    await harness.click(Actions.RETRY_JOB, "ftjob-7", user="U2", message_ts=card_ts)

    assert nebius["create"].call_count == 1
    assert await harness.bot.store.retries_of("ftjob-7") == []


async def test_edit_and_retry_opens_the_form_filled_in_and_links_the_new_job(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: dict[str, respx.Route], card_ts: str
) -> None:
    await harness.click(Actions.EDIT_AND_RETRY, "ftjob-7", message_ts=card_ts)

    (call,) = fake_slack.calls_to("views.open")
    view = call.args["view"]
    fields = {b.get("block_id"): b.get("element", {}) for b in view["blocks"]}
    assert fields["model"]["initial_option"]["value"] == MODEL
    assert fields["training"]["initial_option"]["value"] == "F1"
    assert fields["n_epochs"]["initial_value"] == "2"
    assert fields["suffix"]["initial_value"] == "lens"
    assert json.loads(view["private_metadata"])["retry_of"] == "ftjob-7"

    # The user halves the batch and submits (twice: a double click).
    values = {
        block_id: (
            {"value": {"selected_option": element["initial_option"]}}
            if "initial_option" in element
            else {"value": {"value": element.get("initial_value")}}
        )
        for block_id, element in fields.items()
        if block_id and ("initial_option" in element or "initial_value" in element)
    }
    values["batch_size"] = {"value": {"value": "4"}}
    await harness.submit_view(view, values)
    await harness.submit_view(view, values)

    first, retry = bodies(nebius["create"])
    assert first["hyperparameters"]["batch_size"] == 8
    assert retry["hyperparameters"]["batch_size"] == 4
    assert retry["hyperparameters"]["n_epochs"] == 2 and retry["suffix"] == "lens"
    assert await harness.bot.store.retries_of("ftjob-7") == ["ftjob-8"]
    new_ts = (await harness.bot.store.watch("ftjob-8")).thread_ts
    assert any("with changed settings" in t for t in texts(fake_slack, new_ts))
