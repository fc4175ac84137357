"""Retry from the card: its buttons, the lines that link a job and its retry both ways, the
notes a retry leaves in the two threads, and the create form filled in for Edit and retry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bot.blocks.common import button, context, section, text_message
from bot.blocks.forms import NO_VALIDATION
from bot.blocks.ids import Actions
from bot.chat_interface import Message
from client import Job

# The statuses whose card offers Retry and Edit and retry.
RETRYABLE = ("failed", "cancelled")
EDIT_TITLE = "Edit and retry"  # a modal's title holds at most 24 characters
# The options of a static select: Slack takes at most 100.
MAX_OPTIONS = 100


@dataclass(frozen=True)
class JobLinks:
    """The job this one retries, and the jobs started as its retries (oldest first)."""

    retry_of: str | None = None
    retried_as: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.retry_of is None and not self.retried_as


def links_lines(links: JobLinks | None) -> list[str]:
    """Card fields: `Retry of` and `Retried as`."""
    if links is None:
        return []
    lines = []
    if links.retry_of:
        lines.append(f"*Retry of:* `{links.retry_of}`")
    if links.retried_as:
        lines.append("*Retried as:* " + ", ".join(f"`{j}`" for j in links.retried_as[-3:]))
    return lines


def retry_buttons(job: Job, links: JobLinks | None = None) -> list[dict[str, Any]]:
    """Retry (the same files and settings) and Edit and retry (the form, filled in), for a
    failed or cancelled job. Once retried, the card links the retry instead of offering
    Retry again; Edit and retry stays (another set of settings is another job)."""
    if job.status not in RETRYABLE:
        return []
    buttons = []
    if links is None or not links.retried_as:
        buttons.append(button("Retry", Actions.RETRY_JOB, job.id, style="primary"))
    buttons.append(button("Edit and retry", Actions.EDIT_AND_RETRY, job.id))
    return buttons


def _where(link: str | None, job_id: str) -> str:
    return f"<{link}|its thread>" if link else f"`/finetune status {job_id}` shows its card"


def retried_here_message(old_job: str, new_job: str, user: str, link: str | None) -> Message:
    """Into the old job's thread: where its retry is."""
    where = _where(link, new_job)
    text = f":repeat: <@{user}> retried job `{old_job}` as job `{new_job}` ({where})."
    return text_message(text)


def retry_of_message(old_job: str, new_job: str, *, edited: bool, link: str | None) -> Message:
    """Into the new job's thread: which job it retries."""
    how = "with changed settings" if edited else "with the same files and settings"
    text = (
        f":repeat: Job `{new_job}` is a retry of job `{old_job}` {how} ({_where(link, old_job)})."
    )
    return text_message(text)


def already_retried_message(old_job: str, new_job: str | None, link: str | None) -> Message:
    if new_job is None:
        text = f"Job `{old_job}` is being retried already; its new thread shows the progress."
    else:
        text = f"Job `{old_job}` was retried already: job `{new_job}` ({_where(link, new_job)})."
    return text_message(text)


def cannot_retry_message(job_id: str, reason: str) -> Message:
    text = f":warning: Job `{job_id}` cannot be retried: {reason}"
    return Message(
        text=text,
        blocks=[
            section(text),
            context("`/finetune create` (or the form) starts a new job with whatever you choose."),
        ],
    )


def not_retryable_message(job: Job) -> Message:
    text = (
        f"Job `{job.id}` is {job.status}: only a failed or cancelled job is retried "
        "(`/finetune create` starts another one)."
    )
    return text_message(text)


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _set_initial(block: dict[str, Any], value: str, label: str | None = None) -> None:
    element = block.get("element") or {}
    if element.get("type") == "static_select":
        options = element.setdefault("options", [])
        chosen = next((o for o in options if o.get("value") == value), None)
        if chosen is None:
            # A model or file no longer among those listed: offered first, as it was.
            text = (label or value)[:75]
            chosen = {"text": {"type": "plain_text", "text": text}, "value": value}
            options.insert(0, chosen)
            del options[MAX_OPTIONS:]
        element["initial_option"] = chosen
    elif element.get("type") == "plain_text_input":
        limit = element.get("max_length")
        element["initial_value"] = value[:limit] if limit else value


def filled_create_view(view: dict[str, Any], plan: dict[str, Any], job_id: str) -> dict[str, Any]:
    """The create form (`bot.blocks.forms.create_job_view`) filled in with a stored plan
    (`bot.core.jobs.plan_record`): the model, the files, every setting, the W&B names. Its
    private metadata names the job it retries, so the new job is linked to it."""
    values: dict[str, str] = {}
    labels = {"training": plan.get("training_name"), "validation": plan.get("validation_name")}
    if plan.get("model"):
        values["model"] = str(plan["model"])
    if plan.get("training"):
        values["training"] = str(plan["training"])
    values["validation"] = str(plan.get("validation") or NO_VALIDATION)
    for name, value in (plan.get("hyperparameters") or {}).items():
        if value is not None:
            values[name] = _text_value(value)
    for name in ("seed", "suffix"):
        if plan.get(name) is not None:
            values[name] = _text_value(plan[name])
    for name, value in (plan.get("wandb") or {}).items():
        if value:
            values[f"wandb_{name}"] = str(value)
    blocks = []
    for block in view.get("blocks", []):
        block = json.loads(json.dumps(block))  # the caller's view stays as it was
        block_id = block.get("block_id")
        if block_id in values:
            _set_initial(block, values[block_id], labels.get(block_id))
        blocks.append(block)
    metadata = json.loads(view.get("private_metadata") or "{}")
    return {
        **view,
        "title": {"type": "plain_text", "text": EDIT_TITLE},
        "submit": {"type": "plain_text", "text": "Start the retry"},
        "private_metadata": json.dumps({**metadata, "retry_of": job_id}),
        "blocks": blocks,
    }
