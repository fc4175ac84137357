"""What a worker's protocol lines mean for its job: field changes and event texts.

The worker writes one JSON object per line (`engine.training.events`); the runner reads
them and hands each to the function here for its type. These functions only compute: the
runner reads the store for what they need and writes back what they return, so every text
a user sees for a line is decided here and tested without a process.
"""

from dataclasses import dataclass, field
from typing import Any

from engine.model_registry import Lineage
from engine.objects import fine_tuned_name

# Longest text quoted from a worker (a notice, a failure reason, a log line).
REASON_CHARS = 500
# What a job's secret (its W&B key) becomes in anything the worker says.
REDACTED = "[redacted]"
# The job field and checkpoint metric holding the validation loss before training.
BASE_VALID_LOSS = "base_valid_loss"


@dataclass(frozen=True)
class Event:
    """A job event still to be recorded (see `engine.objects.event_object`)."""

    message: str
    level: str = "info"
    type: str = "message"
    data: Any = None


@dataclass(frozen=True)
class Update:
    """A line's effect on its job: fields to change and events to add, in order."""

    changes: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, REDACTED) if secret else text


def dataset(message: dict[str, Any]) -> Update:
    events = [
        Event(
            f"Dataset tokenized: {message.get('examples', 0):,} training examples"
            f" ({message.get('validation_examples', 0):,} validation), "
            f"{message.get('tokens', 0):,} tokens.",
            data=message,
        )
    ]
    truncated = int(message.get("truncated") or 0)
    dropped = int(message.get("dropped") or 0)
    if truncated or dropped:
        detail = message.get("message") or ""
        events.append(
            Event(
                f"{truncated:,} example(s) truncated and {dropped:,} dropped at the context "
                f"length of {message.get('context_length')} tokens."
                + (f" {detail}" if detail else ""),
                level="warn",
                data={k: message.get(k) for k in ("truncated", "dropped", "context_length")},
            )
        )
    return Update(events=events)


def started(message: dict[str, Any], lineage: Lineage | None) -> Update:
    """`lineage`: where the weights came from, for a job on a fine-tuned model."""
    total = message.get("total_steps")
    resumed = message.get("resumed_from_step")
    data = {**message, **lineage.public()} if lineage is not None else message
    text = (
        f"Training started on {message.get('device')} ({message.get('dtype')}): "
        f"{message.get('model')}"
        + (
            f" (from {lineage.base_model}, {len(lineage.adapters)} LoRA adapter(s) merged)"
            if lineage
            else ""
        )
        + f", {message.get('trainable_parameters', 0):,} of "
        f"{message.get('total_parameters', 0):,} parameters trained, {total} steps over "
        f"{message.get('epochs')} epoch(s)"
        + (f", resumed from step {resumed}" if resumed else "")
        + "."
    )
    return Update({"total_steps": total}, [Event(text, data=data)])


def base_evaluation(message: dict[str, Any]) -> Update:
    """The model's validation loss before training: kept on the job (`base_valid_loss`, not a
    field of Nebius's job object) so that every checkpoint's metrics can carry it."""
    loss = message.get("valid_loss")
    if not isinstance(loss, int | float) or isinstance(loss, bool):
        return Update()  # no figure is better than a wrong one
    return Update(
        {BASE_VALID_LOSS: loss},
        [
            Event(
                f"Base model validation loss {_num(loss)} before training.",
                type="metrics",
                data={BASE_VALID_LOSS: loss},
            )
        ],
    )


def progress(message: dict[str, Any], clock: float) -> Update:
    """`clock`: the time now (Unix seconds), from which the finish is estimated."""
    eta = message.get("eta_seconds")
    changes = {
        "trained_steps": message.get("step"),
        "total_steps": message.get("total_steps"),
        "trained_tokens": message.get("trained_tokens"),
        "estimated_finish": int(clock + eta) if eta is not None else None,
    }
    text = (
        f"Step {message.get('step')}/{message.get('total_steps')}: "
        f"loss {_num(message.get('loss'))}, "
        f"learning rate {_num(message.get('learning_rate'))}, "
        f"{float(message.get('tokens_per_second') or 0):,.1f} tokens/s"
        + (f", about {_duration(eta)} left" if eta is not None else "")
        + "."
    )
    return Update(changes, [Event(text, type="metrics", data=message)])


def epoch(message: dict[str, Any]) -> Update:
    valid = message.get("valid_loss")
    text = (
        f"Epoch {message.get('epoch')} finished at step {message.get('step')}: "
        f"train loss {_num(message.get('train_loss'))}"
        + (f", validation loss {_num(valid)}" if valid is not None else "")
        + "."
    )
    return Update(events=[Event(text, type="metrics", data=message)])


def notice(message: dict[str, Any]) -> Update:
    level = "warn" if message.get("level") == "warn" else "info"
    return Update(events=[Event(str(message.get("message") or "")[:REASON_CHARS], level=level)])


def checkpoint(
    message: dict[str, Any],
    job_id: str,
    job: dict[str, Any],
    file_ids: list[str],
    *,
    checkpoint_id: str,
    created_at: int,
) -> tuple[dict[str, Any], Event]:
    """The checkpoint object (contract shape) for a `checkpoint` line, and its event.

    `file_ids`: the result files already registered for the checkpoint's files. The metrics
    carry the job's `base_valid_loss` when it has one: the worker's own figure, else the job's
    (a worker resumed from a checkpoint that did not keep it); never a null.
    """
    step = int(message.get("step") or 0)
    metrics = {"step": step, **(message.get("metrics") or {})}
    base = metrics.pop(BASE_VALID_LOSS, None)
    if base is None:
        base = job.get(BASE_VALID_LOSS)
    if base is not None:
        metrics[BASE_VALID_LOSS] = base
    record = {
        "id": checkpoint_id,
        "object": "fine_tuning.job.checkpoint",
        "created_at": created_at,
        "fine_tuning_job_id": job_id,
        "step_number": step,
        "fine_tuned_model_checkpoint": (
            fine_tuned_name(job.get("model", ""), job.get("suffix"), job_id) + f":ckpt-step-{step}"
        ),
        "metrics": metrics,
        "result_files": file_ids,
    }
    event = Event(
        f"Checkpoint saved at step {step} (epoch {message.get('epoch')}): {len(file_ids)} file(s).",
        data={
            "step": step,
            "checkpoint": checkpoint_id,
            "result_files": file_ids,
            "metrics": metrics,
        },
    )
    return record, event


def succeeded(
    message: dict[str, Any], job_id: str, job: dict[str, Any], checkpoints: list[dict[str, Any]]
) -> dict[str, Any]:
    """The job's final fields; its result files are those of its last checkpoint."""
    return {
        "trained_tokens": message.get("trained_tokens"),
        "trained_steps": message.get("trained_steps"),
        "estimated_finish": None,
        "fine_tuned_model": fine_tuned_name(job["model"], job.get("suffix"), job_id),
        "result_files": checkpoints[-1]["result_files"] if checkpoints else [],
    }


def failed(message: dict[str, Any]) -> dict[str, Any]:
    """The job's `error` for a failure the worker reported itself."""
    reason = str(message.get("reason") or "training failed")[:REASON_CHARS]
    code = str(message.get("code") or "training_failed")
    return {"code": code, "message": reason, "param": None}


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)
    return "n/a"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 90:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
