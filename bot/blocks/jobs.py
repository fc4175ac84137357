"""Messages about Nebius jobs: the card, lists, events, checkpoints, models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.blocks.best import best_mark, improvement_text
from bot.blocks.charts import chart_button
from bot.blocks.common import (
    SECTION_LIMIT,
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
from bot.blocks.cost import cost_field
from bot.blocks.deploy import deploy_button, full_fine_tune_text
from bot.blocks.failures import failure_text
from bot.blocks.ids import Actions
from bot.blocks.retry import JobLinks, links_lines, retry_buttons
from bot.chat_interface import Message
from client import Checkpoint, Event, Job, Model
from client.checkpoints import best_checkpoint
from client.deployments import is_lora
from client.sizes import human_size

STATUS_ICONS = {
    "validating_files": ":mag:",
    "queued": ":hourglass:",
    "running": ":gear:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "cancelled": ":no_entry_sign:",
}
KEY_HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate", "lora", "context_length")


def when(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def status_text(status: str) -> str:
    return f"{STATUS_ICONS.get(status, ':grey_question:')} {status}"


def _progress(job: Job) -> str:
    if job.trained_steps is None or not job.total_steps:
        return "-"
    text = f"step {job.trained_steps:,} of {job.total_steps:,} ({job.progress or 0:.0%})"
    if job.estimated_finish and not job.is_terminal:
        text += f", ETA {when(job.estimated_finish)}"
    return text


CANCEL_CONFIRM = {
    "title": {"type": "plain_text", "text": "Cancel this job?"},
    "text": {"type": "mrkdwn", "text": "The job stops and cannot be resumed."},
    "confirm": {"type": "plain_text", "text": "Cancel job"},
    "deny": {"type": "plain_text", "text": "Keep running"},
}


def job_card_message(
    job: Job, *, cost: str | None = None, links: JobLinks | None = None
) -> Message:
    """The job card: the latest state of one job, with its buttons. `cost`: its estimate and
    running or final cost (bot.core.costs), when known; `links`: the job it retries and its
    retries (bot.core.retry_links)."""
    hp = job.effective_hyperparameters  # top level, or under `method` (Nebius)
    params = ", ".join(f"{k}={hp[k]}" for k in KEY_HYPERPARAMETERS if k in hp) or "defaults"
    files = f"training `{job.training_file or '-'}`"
    if job.validation_file:
        files += f", validation `{job.validation_file}`"
    fields = [
        f"*Status:* {status_text(job.status)}",
        f"*Model:* `{job.model or '-'}`",
        f"*Files:* {files}",
        f"*Hyperparameters:* {params}",
        f"*Progress:* {_progress(job)}",
        *cost_field(cost),
        f"*Created:* {when(job.created_at)}   *Finished:* {when(job.finished_at)}",
    ]
    if job.fine_tuned_model:
        fields.append(f"*Fine-tuned model:* `{job.fine_tuned_model}`")
    if job.error and (job.error.message or job.error.code):
        fields.append(f"*Error:* {job.error.message or job.error.code}")
    if why := failure_text(job):  # the reason in plain words, and the likely fix
        fields.append(why)
    fields.extend(links_lines(links))
    blocks: list[dict[str, Any]] = [section(f"*Fine-tuning job `{job.id}`*\n" + "\n".join(fields))]
    buttons = [button("Refresh", Actions.REFRESH_JOB, job.id)]
    if not job.is_terminal:
        buttons.append(
            button(
                "Cancel",
                Actions.CANCEL_JOB,
                job.id,
                style="danger",
                confirm=CANCEL_CONFIRM,
            )
        )
    if job.status == "succeeded":
        # No checkpoint id: the click downloads the best one into the card's thread.
        buttons.append(button("Download", Actions.DOWNLOAD_CHECKPOINT, f"{job.id}:"))
        if is_lora(job) is not False:  # a full fine-tune does not deploy serverless
            buttons.append(deploy_button(job.id))
    buttons.extend(chart_button(job))
    buttons.extend(retry_buttons(job, links))
    blocks.append(actions(*buttons))
    text = f"Job {job.id}: {job.status} ({job.model or 'model unknown'})"
    return Message(text=text, blocks=blocks, metadata={"job_id": job.id, "kind": "card"})


def jobs_list_message(jobs: list[Job], *, has_more: bool) -> Message:
    if not jobs:
        text = "No fine-tuning jobs yet. Start one with `/finetune create`."
        return text_message(text)
    lines = [
        f"{status_text(j.status)}  `{j.id}`  {j.model or '-'}  {when(j.created_at)}" for j in jobs
    ]
    blocks = [section("*Recent fine-tuning jobs*\n" + "\n".join(lines))]
    if has_more:
        blocks.append(context("Only the most recent jobs are shown."))
    return Message(text=f"{len(jobs)} recent jobs", blocks=blocks)


def events_message(job_id: str, events: list[Event]) -> Message:
    """Events oldest first, as they happened."""
    if not events:
        text = f"Job `{job_id}` has no events yet."
        return text_message(text)
    lines = [f"{when(e.created_at)}  {(e.level or 'info').upper():<7} {e.message}" for e in events]
    return Message(
        text=f"{len(events)} events of job {job_id}",
        blocks=[section(f"*Events of `{job_id}`*"), code_block("\n".join(lines))],
    )


def _metrics(metrics: dict[str, Any]) -> str:
    parts = []
    for key, value in metrics.items():
        if value is None:  # Nebius lists every metric, null when not measured
            continue
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts) or "no metrics"


def checkpoints_message(job_id: str, checkpoints: list[Checkpoint]) -> Message:
    if not checkpoints:
        text = f"Job `{job_id}` has no checkpoints yet."
        return text_message(text)
    blocks: list[dict[str, Any]] = [section(f"*Checkpoints of `{job_id}`*")]
    for cp in checkpoints:
        files = len(cp.result_files)
        blocks.append(
            section(
                f"*Step {cp.step_number:,}* `{cp.id}`: {_metrics(cp.metrics)} "
                f"({files} {'file' if files == 1 else 'files'})"
            )
        )
    return Message(text=f"{len(checkpoints)} checkpoints of job {job_id}", blocks=blocks)


def models_message(models: list[Model]) -> Message:
    if not models:
        text = "Nebius lists no models for this key."
        return text_message(text)
    names = sorted(m.id for m in models)
    return Message(
        text=f"{len(names)} models",
        blocks=[
            section(f"*Models you can fine-tune* ({len(names)})"),
            code_block("\n".join(names)),
        ],
    )


def cancel_confirm_message(job: Job) -> Message:
    """`/finetune cancel JOB` asks first: the button opens Slack's confirmation dialog."""
    if job.is_terminal:
        text = f"Job `{job.id}` has already ended ({status_text(job.status)}); nothing to cancel."
        return text_message(text)
    text = f"Cancel job `{job.id}` ({status_text(job.status)}, `{job.model or '-'}`)?"
    button_ = button(
        "Cancel job", Actions.CANCEL_JOB, job.id, style="danger", confirm=CANCEL_CONFIRM
    )
    return Message(text=text, blocks=[section(text), actions(button_)])


def cancelled_message(job: Job, user: str) -> Message:
    text = f"<@{user}> asked Nebius to cancel job `{job.id}`; its status is now {job.status}."
    return text_message(text)


def job_starting_message(plan: Any, user: str, *, estimate: str | None = None) -> Message:
    """The thread's parent until the job exists; then it becomes the job card. `estimate`:
    what it should cost (bot.blocks.cost.start_cost_text), before anything is paid for."""
    files = f"`{plan.training.name}`"
    if plan.validation is not None:
        files += f" (validation `{plan.validation.name}`)"
    text = f":rocket: <@{user}> is starting a fine-tuning job: `{plan.model}` on {files}."
    blocks = [section(text)]
    if estimate:
        blocks.append(context(f":moneybag: {estimate}"))
        text += f"\n{estimate}"
    return Message(text=text, blocks=blocks)


def job_step_message(text: str) -> Message:
    return Message(text=text, blocks=[context(f":hourglass_flowing_sand: {text}")])


def job_start_failed_message(problem: str, hint: str | None) -> Message:
    return hinted_message(f":x: The job could not be started: {problem}", hint)


def already_started_message(job_id: str | None) -> Message:
    if job_id:
        text = f"This request already started job `{job_id}`; see its thread."
    else:
        text = "This request is already being started; its thread shows the progress."
    return text_message(text)


def duplicate_request_message(
    job_id: str | None,
    channel: str | None,
    thread_ts: str | None,
    *,
    age_s: float,
    link: str | None = None,
) -> Message:
    """An identical request was made moments ago: point at it instead of paying twice."""
    minutes = int(age_s // 60)
    ago = "less than a minute ago" if minutes < 1 else f"{minutes} min ago"
    # A ts means nothing to a person; a link, or else the channel and the job id, finds it.
    where = ""
    if link:
        where = f" (<{link}|its thread>)"
    elif channel and thread_ts:
        where = f" (its thread is in <#{channel}>)"
    if job_id:
        head = f"You asked for this exact job {ago}: it is job `{job_id}`{where}."
    else:
        head = f"You asked for this exact job {ago} and it is still being started{where}."
    text = (
        f":warning: Not started again. {head} "
        "Change a setting (epochs, say) to start a different job."
    )
    blocks = [section(text)]
    if job_id:
        blocks.append(context(f"`/finetune status {job_id}` shows its card."))
    return Message(text=text, blocks=blocks)


# A reply to a job's thread holds at most this many code blocks of events (about 12,000
# characters): far inside Slack's 50 blocks and 40,000 characters, and short enough to read.
EVENTS_REPLY_BLOCKS = 4
# What one code block holds: a section's 3,000 characters less the fences.
EVENTS_BLOCK_CHARS = SECTION_LIMIT - 6
# One event never takes more than one reply: a longer message is cut here, with a note.
EVENT_MAX_CHARS = EVENTS_REPLY_BLOCKS * EVENTS_BLOCK_CHARS - 200


def _event_line(event: Event) -> str:
    line = f"{when(event.created_at)}  {event.message}"
    # Three backticks inside would close the code block early.
    line = line.replace("```", "`\u200b``")
    if len(line) > EVENT_MAX_CHARS:
        note = f"\n… (event shortened: {len(line):,} characters in all, the first "
        shown = EVENT_MAX_CHARS - len(note) - 20
        line = line[:shown] + note + f"{shown:,} shown)"
    return line


def _event_pieces(line: str) -> list[str]:
    """One event's text in pieces that each fit a code block (a long one spans several)."""
    return [line[i : i + EVENTS_BLOCK_CHARS] for i in range(0, len(line), EVENTS_BLOCK_CHARS)]


def job_events_replies(job_id: str, events: list[Event]) -> list[Message]:
    """New events, oldest first, as as many replies as Slack's limits need: every event shown,
    in order, each in exactly one reply. Each reply's metadata names the first and last event
    it carries, so the watcher records as posted only what a posted reply held."""
    if not events:
        return []
    if len(events) == 1:
        line = f"`{when(events[0].created_at)}` {events[0].message}"
        if len(line) <= SECTION_LIMIT:
            return [_events_reply(job_id, events, [context(line)], clip(events[0].message))]
    replies: list[Message] = []
    carried: list[Event] = []
    blocks: list[list[str]] = []  # each block's lines

    def flush() -> None:
        if carried:
            text = f"{len(carried)} new events" if len(carried) > 1 else clip(carried[0].message)
            code = [code_block("\n".join(lines)) for lines in blocks]
            replies.append(_events_reply(job_id, carried, code, text))
        carried.clear()
        blocks.clear()

    for event in events:
        pieces = _event_pieces(_event_line(event))
        if len(pieces) == 1 and blocks:
            last = blocks[-1]
            if sum(len(x) + 1 for x in last) + len(pieces[0]) <= EVENTS_BLOCK_CHARS:
                last.append(pieces[0])
                carried.append(event)
                continue
        if len(blocks) + len(pieces) > EVENTS_REPLY_BLOCKS:
            flush()
        blocks.extend([piece] for piece in pieces)
        carried.append(event)
    flush()
    return replies


def _events_reply(
    job_id: str, events: list[Event], blocks: list[dict[str, Any]], text: str
) -> Message:
    metadata = {
        "job_id": job_id,
        "kind": "events",
        "first_event_id": events[0].id,
        "last_event_id": events[-1].id,
        "count": len(events),
    }
    return Message(text=text, blocks=blocks, metadata=metadata)


def job_gone_message(job_id: str) -> Message:
    text = (
        f":grey_question: Job `{job_id}` no longer exists on Nebius (deleted, or another "
        "account's key); this thread stops following it."
    )
    return Message(text=text, blocks=[section(text)], metadata={"job_id": job_id, "kind": "card"})


def job_summary_message(
    job: Job, checkpoints: list[Checkpoint], user: str | None, *, cost: str | None = None
) -> Message:
    """The end of a job: outcome, checkpoints with metrics and Download buttons (the best one
    marked, with the reason), the change from the base model's validation loss where the
    server gives that figure, the cost, Deploy (LoRA) and a mention."""
    who = f"<@{user}> " if user else ""
    if job.status == "succeeded":
        head = f":white_check_mark: {who}job `{job.id}` succeeded."
        if job.fine_tuned_model:
            head += f" Model: `{job.fine_tuned_model}`."
    elif job.status == "failed":
        reason = (job.error.message or job.error.code) if job.error else None
        head = f":x: {who}job `{job.id}` failed" + (f": {reason}" if reason else ".")
    else:
        head = f":no_entry_sign: {who}job `{job.id}` was {job.status}."
    blocks: list[dict[str, Any]] = [section(head)]
    best = best_checkpoint(checkpoints)
    for cp in checkpoints[-10:]:
        mark = f"  {best_mark(best)}" if best is not None and best.id == cp.id else ""
        blocks.append(
            {
                **section(f"*Step {cp.step_number:,}* `{cp.id}`: {_metrics(cp.metrics)}{mark}"),
                "accessory": button("Download", Actions.DOWNLOAD_CHECKPOINT, f"{job.id}:{cp.id}"),
            }
        )
    if len(checkpoints) > 10:
        blocks.append(
            context(
                f"{len(checkpoints) - 10} earlier checkpoints: `/finetune checkpoints {job.id}`"
            )
        )
    if best is not None:
        notes = [f"Best checkpoint: step {best.step:,} `{best.id}`"]
        if improved := improvement_text(job, checkpoints, best):
            notes.append(improved)
        blocks.append(context("; ".join(notes) + "."))
    if cost:
        blocks.append(context(cost_field(cost)[0]))
    if job.status == "succeeded":
        # What to do with the fine-tuned model, in one row.
        row = [compare_button(job.id)]
        if is_lora(job) is False:
            blocks.append(context(f":information_source: {full_fine_tune_text(job.id)}"))
        elif best is not None:
            row.insert(0, deploy_button(job.id, best.id, label="Deploy best checkpoint"))
        blocks.append(actions(*row))
    return Message(text=head, blocks=blocks, metadata={"job_id": job.id, "kind": "summary"})


def download_too_large_message(job_id: str, checkpoint_id: str, name: str, size: int) -> Message:
    text = (
        f":package: `{name}` ({human_size(size)}) is over Slack's 1 GB file limit. "
        f"Fetch it outside Slack: `finetune download {job_id} --checkpoint {checkpoint_id}`"
    )
    return text_message(text)


def watching_message(job: Job, user: str) -> Message:
    text = f":eyes: <@{user}> asked me to follow job `{job.id}` here."
    return text_message(text)


def already_watching_message(job_id: str, channel: str, thread_ts: str) -> Message:
    text = f"Job `{job_id}` is already followed in <#{channel}> (thread {thread_ts})."
    return text_message(text)


def checkpoint_files_message(job_id: str, checkpoint: Checkpoint, user: str) -> Message:
    text = (
        f":package: <@{user}> asked for the files of checkpoint `{checkpoint.id}` "
        f"(step {checkpoint.step_number:,}) of job `{job_id}`."
    )
    return text_message(text)
