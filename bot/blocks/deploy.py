"""Messages about custom models: deploying a checkpoint, its progress (one message edited in
place), the model ready with its Try it button, the Try it form and its side-by-side answers,
the deployments list, and undeploying (asks first)."""

from __future__ import annotations

import json
from typing import Any

from bot.blocks.common import (
    actions,
    button,
    clip,
    code_block,
    context,
    hinted_message,
    section,
    text_message,
)
from bot.blocks.compare import compare_button
from bot.blocks.ids import Actions, Views
from bot.chat_interface import Message
from bot.store import StoredDeployment
from client.checkpoints import ChosenCheckpoint
from client.deployments import Deployment

# Slack's limits: a section field holds 2,000 characters, a text input's value 3,000.
FIELD_LIMIT = 2000
INPUT_LIMIT = 3000
PROMPT_SHOWN_CHARS = 1500

UNDEPLOY_CONFIRM = {
    "title": {"type": "plain_text", "text": "Delete this custom model?"},
    "text": {"type": "mrkdwn", "text": "Chats that use it will fail from then on."},
    "confirm": {"type": "plain_text", "text": "Delete model"},
    "deny": {"type": "plain_text", "text": "Keep it"},
}


def note_message(text: str) -> Message:
    """A short answer to whoever asked (why nothing was deployed or tried)."""
    return text_message(text)


def deploy_button(job_id: str, checkpoint_id: str = "", *, label: str = "Deploy") -> dict:
    """No checkpoint id: the click deploys the best one (client.checkpoints)."""
    return button(label, Actions.DEPLOY_CHECKPOINT, f"{job_id}:{checkpoint_id}", style="primary")


def try_button(full_name: str) -> dict:
    return button("Try it", Actions.TRY_MODEL, full_name, style="primary")


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def deploying_message(
    job_id: str, chosen: ChosenCheckpoint, base_model: str, name: str, user: str | None
) -> Message:
    """The progress message, before Nebius has answered."""
    who = f"<@{user}> asked to deploy" if user else "Deploying"
    text = (
        f":rocket: {who} checkpoint `{chosen.id}` (step {chosen.step:,}) of job `{job_id}` "
        f"as a custom model onto `{base_model}`, named `{name}`…"
    )
    return Message(
        text=text,
        blocks=[section(text), context(chosen.describe())],
        metadata={"job_id": job_id, "kind": "deploy"},
    )


def deploy_progress_message(full_name: str, state: str, elapsed_s: float, job_id: str) -> Message:
    text = f":hourglass_flowing_sand: `{full_name}` is {state} ({_minutes(elapsed_s)} so far)…"
    return Message(
        text=text,
        blocks=[
            section(text),
            context("Nebius checks the adapter before it serves it; this message follows it."),
        ],
        metadata={"job_id": job_id, "kind": "deploy"},
    )


def deploy_done_message(
    stored: StoredDeployment, full_name: str, elapsed_s: float | None
) -> Message:
    took = f" after {_minutes(elapsed_s)}" if elapsed_s is not None else ""
    step = f" (step {stored.step:,})" if stored.step is not None else ""
    text = (
        f":white_check_mark: Checkpoint `{stored.checkpoint_id}`{step} of job "
        f"`{stored.job_id}`: `{full_name}` is active{took}."
    )
    return Message(
        text=text, blocks=[section(text)], metadata={"job_id": stored.job_id, "kind": "deploy"}
    )


def deployed_message(stored: StoredDeployment, full_name: str, base_model: str | None) -> Message:
    """In the job's thread once the model is active: its name and the Try it button."""
    who = f"<@{stored.user_id}> " if stored.user_id else ""
    text = (
        f":sparkles: {who}checkpoint `{stored.checkpoint_id}` of job `{stored.job_id}` is "
        f"deployed as `{full_name}`"
        + (f" (base model `{base_model}`)" if base_model else "")
        + ". Try it: the answers of this model and of its base model come side by side."
    )
    return Message(
        text=text,
        blocks=[
            section(text),
            actions(try_button(full_name), compare_button(stored.job_id)),
            context(
                f"Or type `/finetune try {full_name} your prompt`. "
                f"`/finetune undeploy {full_name}` deletes it."
            ),
        ],
        metadata={"job_id": stored.job_id, "kind": "deployed"},
    )


def deploy_failed_message(problem: str, hint: str | None, job_id: str) -> Message:
    text = f":x: The checkpoint could not be deployed: {problem}"
    return hinted_message(text, hint, {"job_id": job_id, "kind": "deploy"})


def deploy_still_waiting_message(full_name: str, elapsed_s: float, job_id: str) -> Message:
    text = (
        f":hourglass: `{full_name}` is still validating after {_minutes(elapsed_s)}. "
        "It may yet become active: `/finetune models` shows its state."
    )
    return Message(text=text, blocks=[section(text)], metadata={"job_id": job_id, "kind": "deploy"})


def already_deployed_message(stored: StoredDeployment) -> Message:
    """A second click (or a redelivery) on a checkpoint that is deployed or deploying."""
    name = f"`{stored.name}`" if stored.name else "its custom model"
    if stored.state == "active":
        text = f"Checkpoint `{stored.checkpoint_id}` is already deployed as {name}."
    else:
        text = (
            f"Checkpoint `{stored.checkpoint_id}` of job `{stored.job_id}` is already being "
            f"deployed ({stored.state}); its thread follows it."
        )
    return text_message(text)


def full_fine_tune_text(job_id: str) -> str:
    """What to do with a full fine-tune instead of deploying it (no Deploy button)."""
    return (
        f"Job `{job_id}` is a full fine-tune: only LoRA checkpoints deploy as serverless "
        f"models. Download the checkpoint (`/finetune download {job_id}`) and serve it "
        "yourself, or fine-tune again with LoRA on."
    )


def full_fine_tune_message(job_id: str) -> Message:
    text = full_fine_tune_text(job_id)
    return Message(text=text, blocks=[section(f":information_source: {text}")])


# ---------------------------------------------------------------------- the list


def _state(state: str | None) -> str:
    icons = {"active": ":large_green_circle:", "error": ":red_circle:", "deleted": ":wastebasket:"}
    shown = state or "validating"
    return f"{icons.get(shown, ':hourglass:')} {shown}"


def deployments_blocks(deployments: list[Deployment], note: str | None = None) -> list[dict]:
    """The custom models, for `/finetune models` (one code block: it stays one block)."""
    if not deployments:
        text = note or "No custom models yet: a succeeded LoRA job's summary has a Deploy button."
        return [section("*Custom models (deployments)*"), context(text)]
    lines = [
        f"{d.name}  {d.state}  {d.origin or '-'}"
        for d in sorted(deployments, key=lambda d: d.created_at or 0, reverse=True)
    ]
    blocks = [
        section(f"*Custom models (deployments)* ({len(deployments)})"),
        code_block("\n".join(lines)),
        context("`/finetune try NAME prompt` asks one; `/finetune undeploy NAME` deletes one."),
    ]
    if note:
        blocks.append(context(note))
    return blocks


def undeploy_confirm_message(deployment: Deployment) -> Message:
    """`/finetune undeploy NAME` asks first: the button carries Slack's confirmation."""
    source = f", from `{deployment.origin}`" if deployment.origin else ""
    text = f"Delete custom model `{deployment.name}` ({_state(deployment.status)}{source})?"
    element = button(
        "Delete model",
        Actions.UNDEPLOY_MODEL,
        deployment.name,
        style="danger",
        confirm=UNDEPLOY_CONFIRM,
    )
    return Message(text=text, blocks=[section(text), actions(element)])


def undeployed_message(full_name: str, user: str) -> Message:
    text = f":wastebasket: <@{user}> deleted custom model `{full_name}`."
    return text_message(text)


def already_undeployed_message(full_name: str) -> Message:
    text = f"Custom model `{full_name}` is already gone; nothing to delete."
    return text_message(text)


# ---------------------------------------------------------------------- Try it


def try_view(
    *,
    model: str,
    base_model: str,
    system_prompt: str | None,
    channel: str,
    thread_ts: str | None,
) -> dict[str, Any]:
    """The Try it form: a prompt, and the system prompt of the training data prefilled."""
    system: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "value",
        "multiline": True,
        "max_length": INPUT_LIMIT,
    }
    if system_prompt:
        system["initial_value"] = system_prompt[:INPUT_LIMIT]
    prompt = {
        "type": "plain_text_input",
        "action_id": "value",
        "multiline": True,
        "max_length": INPUT_LIMIT,
    }
    metadata = {"channel": channel, "thread_ts": thread_ts, "model": model, "base": base_model}
    return {
        "type": "modal",
        "callback_id": Views.TRY_MODEL,
        "title": {"type": "plain_text", "text": "Try the fine-tuned model"},
        "submit": {"type": "plain_text", "text": "Ask both"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(metadata),
        "blocks": [
            context(
                f"`{clip(model, 900)}` and its base model `{clip(base_model, 900)}` answer "
                "the same prompt; the answers come side by side in the thread."
            ),
            {
                "type": "input",
                "block_id": "system",
                "label": {"type": "plain_text", "text": "System prompt"},
                "element": system,
                "optional": True,
                "hint": {"type": "plain_text", "text": "From the training data, when it has one"},
            },
            {
                "type": "input",
                "block_id": "prompt",
                "label": {"type": "plain_text", "text": "Prompt"},
                "element": prompt,
                "optional": False,
            },
        ],
    }


def try_answers_message(
    *,
    user: str | None,
    prompt: str,
    tuned: tuple[str, str],
    base: tuple[str, str],
) -> Message:
    """The two answers side by side: `tuned` and `base` are (model, answer or problem)."""
    who = f"<@{user}> asked" if user else "Asked"
    shown = prompt if len(prompt) <= PROMPT_SHOWN_CHARS else prompt[:PROMPT_SHOWN_CHARS] + " …"

    def field(title: str, model: str, answer: str) -> dict[str, str]:
        head = f"*{title}* `{clip(model, 300)}`\n"
        return {"type": "mrkdwn", "text": clip(head + (answer or "_(empty answer)_"), FIELD_LIMIT)}

    blocks = [
        section(f":speech_balloon: {who}:\n>{shown.replace(chr(10), chr(10) + '>')}"),
        {
            "type": "section",
            "fields": [field("Fine-tuned", *tuned), field("Base", *base)],
        },
    ]
    text = clip(f"Fine-tuned ({tuned[0]}): {tuned[1]}\n\nBase ({base[0]}): {base[1]}", 3900)
    return Message(text=text, blocks=blocks)
