"""Deploy, undeploy and the models list through Bolt, against the fake Slack and a Nebius
that answers as Nebius does (generated names, a first poll without a status, errors with a
status_reason). The summary's Deploy button deploys the best checkpoint, once however often
it is clicked; one message in the thread follows the deployment, edited in place."""

from __future__ import annotations

import asyncio
import json

import respx

from bot.blocks import Actions
from tests.bot.conftest import HarnessFactory
from tests.bot.fake_slack import FakeSlack, PostedMessage
from tests.bot.harness import SlackHarness
from tests.bot.nebius_models import BASE, FULL_NAME, FakeModels, succeeded_job


async def summary_in_thread(harness: SlackHarness, fake_slack: FakeSlack) -> PostedMessage:
    """The job's card and watch, and the watcher's end-of-job summary in its thread."""
    card = await harness.bot.chat.post("C1", _text("card"))
    await harness.bot.store.add_watch("ftjob-1", "C1", card.ts, "U1")
    assert harness.bot.watcher is not None
    await harness.bot.watcher.poll_due()
    (summary,) = [m for m in fake_slack.thread("C1", card.ts) if kind(m) == "summary"]
    return summary


def kind(message: PostedMessage) -> str | None:
    return ((message.metadata or {}).get("event_payload") or {}).get("kind")


def _text(text: str):
    from bot.chat_interface import Message

    return Message(text=text)


def buttons(message: PostedMessage) -> dict[str, dict]:
    found = {}
    for block in message.blocks:
        for element in [*(block.get("elements") or []), block.get("accessory") or {}]:
            if element.get("type") == "button":
                found.setdefault(element["text"]["text"], element)
    return found


def answer(fake: FakeSlack, user: str = "U1") -> str:
    return "\n".join(
        e["text"] + json.dumps(e.get("blocks") or []) for e in fake.ephemerals_for(user)
    )


async def test_the_summarys_deploy_button_deploys_the_best_checkpoint_and_follows_it(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    summary = await summary_in_thread(harness, fake_slack)
    deploy = buttons(summary)["Deploy best checkpoint"]
    assert deploy["value"] == "ftjob-1:cp-1"  # the lowest validation loss, not the last

    await harness.click(Actions.DEPLOY_CHECKPOINT, deploy["value"], message_ts=summary.ts)

    # The cookbook's body, onto the inference id of the fine-tuned model.
    (body,) = models.posts
    assert body == {
        "name": "demo-1-step10",
        "base_model": BASE,
        "source": "ftjob-1:cp-1",
        "description": "ftjob-1 step 10 (XGenLens bot)",
    }
    thread = summary.thread_ts
    assert thread is not None
    new = [m for m in fake_slack.thread("C1", thread) if m.ts > summary.ts]
    # One progress message however many polls (three here), edited in place, and one message
    # naming the model once it is active.
    assert models.gets == 3
    progress, deployed = new
    assert progress.updates >= 2
    assert f"`{FULL_NAME}` is active" in progress.text
    assert FULL_NAME in deployed.text and "<@U1>" in deployed.text
    assert buttons(deployed)["Try it"]["value"] == FULL_NAME
    # Kept as Nebius answered it, with the training data's system prompt for Try it.
    stored = await harness.bot.store.deployment("ftjob-1", "cp-1")
    assert stored is not None and (stored.name, stored.state) == (FULL_NAME, "active")
    assert stored.system_prompt and stored.system_prompt.startswith("You turn short ideas")


async def test_a_double_click_on_deploy_deploys_once(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    summary = await summary_in_thread(harness, fake_slack)
    value = buttons(summary)["Deploy best checkpoint"]["value"]
    await asyncio.gather(
        harness.click(Actions.DEPLOY_CHECKPOINT, value, message_ts=summary.ts),
        harness.click(Actions.DEPLOY_CHECKPOINT, value, message_ts=summary.ts),
    )
    await harness.click(Actions.DEPLOY_CHECKPOINT, value, message_ts=summary.ts)

    assert len(models.posts) == 1
    notes = answer(fake_slack)
    assert "is already being deployed" in notes or "already deployed" in notes
    assert f"already deployed as `{FULL_NAME}`" in notes


async def test_a_deployment_nebius_refuses_says_why_and_may_be_tried_again(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    models.polls = [None, "error"]
    models.reason = "base model meta-llama/Meta-Llama-3.1-8B-Instruct does not serve LoRA"
    summary = await summary_in_thread(harness, fake_slack)
    value = buttons(summary)["Deploy best checkpoint"]["value"]
    await harness.click(Actions.DEPLOY_CHECKPOINT, value, message_ts=summary.ts)

    (progress,) = [m for m in fake_slack.thread("C1", summary.thread_ts or "") if m.ts > summary.ts]
    assert "could not be deployed" in progress.text and "does not serve LoRA" in progress.text
    assert "Traceback" not in progress.text
    stored = await harness.bot.store.deployment("ftjob-1", "cp-1")
    assert stored is not None and stored.state == "error"

    models.polls = ["active"]
    await harness.click(Actions.DEPLOY_CHECKPOINT, value, message_ts=summary.ts)
    assert len(models.posts) == 2


async def test_a_full_fine_tune_has_no_deploy_button_and_is_not_deployed(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    models = FakeModels()
    models.route(nebius_api, succeeded_job(lora=False))
    summary = await summary_in_thread(harness, fake_slack)
    assert not any(name.startswith("Deploy") for name in buttons(summary))
    text = json.dumps(summary.blocks)
    assert "full fine-tune" in text and "/finetune download ftjob-1" in text

    await harness.command("deploy ftjob-1")
    assert "full fine-tune" in answer(fake_slack)
    assert models.posts == []


async def test_the_deploy_command_takes_a_checkpoint_by_step(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    await harness.command("deploy ftjob-1 20")
    (body,) = models.posts
    assert body["source"] == "ftjob-1:cp-2"
    # No thread follows the job in this channel: the progress message begins one.
    (parent,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
    assert "step 20" in parent.text and "is active" in parent.text
    (deployed,) = fake_slack.thread("C1", parent.ts)
    assert "Try it" in buttons(deployed)


async def test_deploy_and_undeploy_follow_the_allowlists(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, models: FakeModels
) -> None:
    harness = harness_factory(allowed_users=frozenset({"U9"}))
    models.deployed[FULL_NAME] = {
        "name": FULL_NAME,
        "base_model": BASE,
        "source": "ftjob-1:cp-1",
        "status": "active",
        "polls": ["active"],
    }
    await harness.command("undeploy " + FULL_NAME)
    await harness.click(Actions.UNDEPLOY_MODEL, FULL_NAME)
    await harness.click(Actions.DEPLOY_CHECKPOINT, "ftjob-1:")
    await harness.command("deploy ftjob-1")

    refusals = fake_slack.ephemerals_for("U1")
    assert len(refusals) == 4 and all("Sorry" in e["text"] for e in refusals)
    assert "XGENLENS_ALLOWED_USERS" in refusals[0]["text"]
    assert models.deletes == [] and models.posts == []


async def test_undeploy_asks_first_then_deletes_once(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    await harness.command("deploy ftjob-1")
    fake_slack.ephemerals.clear()

    await harness.command("undeploy " + FULL_NAME)
    (ask,) = fake_slack.ephemerals_for("U1")
    (delete,) = [e for b in ask["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert delete["value"] == FULL_NAME and delete["confirm"]  # Slack's own dialog
    assert models.deletes == []  # asked, nothing deleted yet

    await harness.click(Actions.UNDEPLOY_MODEL, delete["value"])
    await harness.click(Actions.UNDEPLOY_MODEL, delete["value"])  # a double click
    assert models.deletes == [FULL_NAME, FULL_NAME]
    told = [e["text"] for e in fake_slack.ephemerals_for("U1")][1:]
    assert "deleted custom model" in told[0] and "already gone" in told[1]
    stored = await harness.bot.store.deployment_named(FULL_NAME)
    assert stored is not None and stored.state == "deleted"


async def test_undeploying_an_unknown_name_says_so_in_plain_words(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    await harness.command("undeploy nothing-LoRa:here")
    text = answer(fake_slack)
    assert "No custom model named" in text and "Traceback" not in text


async def test_models_lists_the_deployments_too(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, models: FakeModels
) -> None:
    nebius_api.get("models").respond(json={"object": "list", "data": [{"id": "model-a"}]})
    await harness.command("deploy ftjob-1")
    fake_slack.ephemerals.clear()
    await harness.command("models")
    text = answer(fake_slack)
    assert "model-a" in text and "Custom models" in text
    assert FULL_NAME in text and "active" in text and "ftjob-1:cp-1" in text
