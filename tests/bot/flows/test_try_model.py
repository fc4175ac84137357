"""Try it: the deployment's button opens a form with the training data's system prompt, and
the fine-tuned and the base model answer side by side in the job's thread, once per
submission; `/finetune try MODEL|JOB prompt` does the same inline."""

from __future__ import annotations

import json

import respx

from bot.blocks import Actions
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SlackHarness
from tests.bot.nebius_models import BASE, FULL_NAME, SYSTEM_PROMPT, FakeModels


def side_by_side(fake_slack: FakeSlack) -> list[dict]:
    return [
        b
        for m in fake_slack.messages.values()
        for b in m.blocks
        if b["type"] == "section" and "fields" in b
    ]


async def test_try_it_asks_both_models_and_answers_side_by_side_once(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    await harness.command("deploy ftjob-1")
    (parent,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]

    await harness.click(Actions.TRY_MODEL, FULL_NAME, message_ts=parent.ts)
    (opened,) = fake_slack.calls_to("views.open")
    view = opened.args["view"]
    system = next(b for b in view["blocks"] if b.get("block_id") == "system")
    assert system["element"]["initial_value"] == SYSTEM_PROMPT

    values = {
        "system": {"value": {"type": "plain_text_input", "value": SYSTEM_PROMPT}},
        "prompt": {"value": {"type": "plain_text_input", "value": "a lighthouse = storm"}},
    }
    response = await harness.submit_view(view, values, view_id="V7")
    assert response.status_code == 200 and response.text == ""
    await harness.submit_view(view, values, view_id="V7")  # delivered again

    assert sorted(c["model"] for c in models.chats) == sorted([FULL_NAME, BASE])
    assert all(
        c["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT} for c in models.chats
    )
    (answers,) = side_by_side(fake_slack)
    tuned, base = (f["text"] for f in answers["fields"])
    assert "Fine-tuned" in tuned and f"answer of {FULL_NAME}" in tuned
    assert "Base" in base and f"answer of {BASE}" in base
    (message,) = [m for m in fake_slack.messages.values() if answers in m.blocks]
    assert message.thread_ts == parent.ts  # the deployment's thread


async def test_an_empty_prompt_keeps_the_form_open_saying_why(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    await harness.command("deploy ftjob-1")
    await harness.click(Actions.TRY_MODEL, FULL_NAME)
    view = fake_slack.calls_to("views.open")[0].args["view"]
    response = await harness.submit_view(
        view, {"prompt": {"value": {"type": "plain_text_input", "value": "  "}}}
    )
    body = response.json()
    assert body["response_action"] == "errors" and "prompt" in body["errors"]
    assert models.chats == []


async def test_try_inline_takes_the_prompt_as_typed(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    await harness.command("deploy ftjob-1")
    await harness.command(f'try {FULL_NAME} make x=1 "bold"')
    assert {c["messages"][-1]["content"] for c in models.chats} == {'make x=1 "bold"'}
    assert len(side_by_side(fake_slack)) == 1


async def test_try_a_job_finds_its_active_deployment(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    await harness.command("deploy ftjob-1")
    await harness.command("try ftjob-1 a red fox")
    assert sorted(c["model"] for c in models.chats) == sorted([FULL_NAME, BASE])


async def test_try_without_a_deployment_says_what_to_do(
    harness: SlackHarness, fake_slack: FakeSlack, models: FakeModels
) -> None:
    await harness.command("try ftjob-1 a red fox")
    (told,) = fake_slack.ephemerals_for("U1")
    assert "Cannot try" in told["text"] and "deploy" in told["text"]
    assert models.chats == []


async def test_a_model_that_fails_says_so_in_its_own_column(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, models: FakeModels
) -> None:
    await harness.command("deploy ftjob-1")

    def chat(request):
        import httpx

        body = json.loads(request.content)
        if body["model"] == BASE:
            return httpx.Response(400, json={"error": {"message": "model is overloaded"}})
        return models._chat(request)

    nebius_api.post("chat/completions").mock(side_effect=chat)
    await harness.command(f"try {FULL_NAME} hello")
    (answers,) = side_by_side(fake_slack)
    tuned, base = (f["text"] for f in answers["fields"])
    assert f"answer of {FULL_NAME}" in tuned
    assert "no answer" in base and "model is overloaded" in base
