"""A job's loss curve, read from its events and checkpoints.

What each server gives:

- The local engine's `metrics` events carry `data` with figures: `{"type": "progress", "step",
  "total_steps", "epoch", "loss", "learning_rate", ...}` now and then during training, and
  `{"type": "epoch", "epoch", "step", "train_loss", "valid_loss"}` at each epoch's end; its
  checkpoints carry `metrics` `{"step", "train_loss", "valid_loss"}`.
- Nebius's events are mostly plain messages ("Job is submitted", "Training completed
  successfully"); its checkpoints, one per epoch, carry `metrics` with `train_loss`,
  `valid_loss`, `full_valid_loss`, `step` (null when not measured).

So figures are taken from an event's `data` first, from numbers in its message when `data` has
none ("Step 10/100: loss 1.23, learning rate 2e-05"), and from the checkpoints. What could not
be found is said in `LossCurve.missing`, in words a user can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The checkpoint rule has one home, shared with `finetune download`/`deploy` and the bot.
from client.checkpoints import CHECKPOINT_VALID_KEYS, ChosenCheckpoint, best_checkpoint, number
from client.models import Checkpoint, Event, Job

# Keys a figure may come under, in order of preference.
STEP_KEYS = ("step", "step_number", "global_step")
TRAIN_LOSS_KEYS = ("loss", "train_loss", "training_loss")
VALID_LOSS_KEYS = ("valid_loss", "validation_loss", "val_loss", "eval_loss", "full_valid_loss")
LEARNING_RATE_KEYS = ("learning_rate", "lr")
EPOCH_KEYS = ("epoch",)

# What a chart says when a figure is not there (one home for each text).
NO_TRAINING_LOSS = "no training loss yet: the job has reported no figures"
TRAINING_LOSS_PER_CHECKPOINT = (
    "no per-step training loss in the events: training loss is shown per checkpoint"
)
NO_VALIDATION_FILE = "no validation loss: the job has no validation file"
NO_VALIDATION_YET = "no validation loss yet: it is measured at the end of each epoch"
NO_VALIDATION_REPORTED = "no validation loss in the events or the checkpoints' metrics"
NO_LEARNING_RATE = "no learning rate in the events"
NO_CHECKPOINTS = "no checkpoints yet: no best checkpoint to mark"
BEST_IS_LAST = "no validation loss to choose by: the last checkpoint is marked as the best"

_NUMBER = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"
_SEP = r"\s*[:=]?\s*"
_STEP_RE = re.compile(r"\bstep" + _SEP + r"(\d+)(?:\s*(?:/|of)\s*(\d+))?", re.IGNORECASE)
_EPOCH_RE = re.compile(r"\bepoch" + _SEP + r"(\d+)", re.IGNORECASE)
_EPOCH_END_RE = re.compile(r"^\s*epoch\s*\d+\b.*\b(?:finished|ended|done|complete)", re.I)
_VALID_RE = re.compile(
    r"\b(?:full[ _-]?)?(?:validation|valid|val|eval)[ _-]?loss" + _SEP + _NUMBER, re.IGNORECASE
)
_TRAIN_RE = re.compile(r"(?<![\w-])(?:(?:training|train)[ _-]?)?loss" + _SEP + _NUMBER, re.I)
_LR_RE = re.compile(r"\b(?:learning[ _-]?rate|lr)" + _SEP + _NUMBER, re.IGNORECASE)


@dataclass(frozen=True)
class StepPoint:
    """Training figures reported at one step."""

    step: int
    loss: float | None = None
    learning_rate: float | None = None
    epoch: int | None = None


@dataclass(frozen=True)
class EpochPoint:
    """Figures measured at the end of an epoch or at a checkpoint, placed at its step."""

    step: int
    epoch: int | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    checkpoint_id: str | None = None


BestCheckpoint = ChosenCheckpoint  # the name the chart's code knows it by


@dataclass
class LossCurve:
    job_id: str
    model: str | None
    status: str | None
    steps: list[StepPoint] = field(default_factory=list)  # by step, one each
    epochs: list[EpochPoint] = field(default_factory=list)  # by step, one each
    best: BestCheckpoint | None = None
    total_steps: int | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def train_losses(self) -> list[tuple[int, float]]:
        """Training loss by step, from the events."""
        return [(p.step, p.loss) for p in self.steps if p.loss is not None]

    @property
    def learning_rates(self) -> list[tuple[int, float]]:
        return [(p.step, p.learning_rate) for p in self.steps if p.learning_rate is not None]

    @property
    def valid_losses(self) -> list[tuple[int, float]]:
        """Validation loss by epoch (at the step each epoch ended)."""
        return [(p.step, p.valid_loss) for p in self.epochs if p.valid_loss is not None]

    @property
    def epoch_train_losses(self) -> list[tuple[int, float]]:
        """Training loss per epoch or checkpoint: the curve to draw when no step has one."""
        return [(p.step, p.train_loss) for p in self.epochs if p.train_loss is not None]

    @property
    def is_empty(self) -> bool:
        return not (self.train_losses or self.epoch_train_losses or self.valid_losses)

    @property
    def final_train_loss(self) -> float | None:
        series = self.train_losses or self.epoch_train_losses
        return series[-1][1] if series else None

    @property
    def final_valid_loss(self) -> float | None:
        series = self.valid_losses
        return series[-1][1] if series else None


def _integer(value: Any) -> int | None:
    found = number(value)
    return int(found) if found is not None and found >= 0 and found == int(found) else None


def _first(data: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if data.get(key) is not None:
            return data[key]
    return None


def message_figures(message: str) -> dict[str, float | int]:
    """The figures written in an event's message, under the keys `data` would use."""
    found: dict[str, float | int] = {}
    text = message or ""
    if match := _STEP_RE.search(text):
        found["step"] = int(match.group(1))
        if match.group(2):
            found["total_steps"] = int(match.group(2))
    if match := _EPOCH_RE.search(text):
        found["epoch"] = int(match.group(1))
    if (match := _VALID_RE.search(text)) and (valid := number(match.group(1))) is not None:
        found["valid_loss"] = valid
    # "validation loss 1.2" must not be read as the training loss: take it out first.
    rest = _VALID_RE.sub(" ", text)
    if (match := _TRAIN_RE.search(rest)) and (loss := number(match.group(1))) is not None:
        found["loss"] = loss
    if (match := _LR_RE.search(rest)) and (lr := number(match.group(1))) is not None:
        found["learning_rate"] = lr
    return found


def _figures(event: Event) -> tuple[dict[str, Any], bool]:
    """The event's figures, and whether they mark an epoch's end. `data` first; the message
    when `data` carries no loss or learning rate."""
    data: dict[str, Any] = dict(event.data) if isinstance(event.data, Mapping) else {}
    kind = data.get("type")
    # Checkpoint events repeat the checkpoint's metrics, which are read from the checkpoints.
    if kind in ("dataset", "started") or "checkpoint" in data or "result_files" in data:
        return {}, False
    has_figures = any(
        _first(data, keys) is not None
        for keys in (TRAIN_LOSS_KEYS, VALID_LOSS_KEYS, LEARNING_RATE_KEYS)
    )
    if not has_figures or _first(data, STEP_KEYS) is None:
        parsed = message_figures(event.message)
        data = {**parsed, **{k: v for k, v in data.items() if v is not None}}
        if kind is None and _EPOCH_END_RE.search(event.message or ""):
            kind = "epoch"
    epoch_end = kind == "epoch" or number(_first(data, VALID_LOSS_KEYS)) is not None
    return data, epoch_end


def _checkpoint_point(checkpoint: Checkpoint, epoch: int | None) -> EpochPoint | None:
    metrics = checkpoint.metrics or {}
    step = checkpoint.step_number or _integer(metrics.get("step"))
    if step is None:
        return None
    return EpochPoint(
        step=step,
        epoch=epoch,
        train_loss=number(_first(metrics, ("train_loss", "training_loss", "loss"))),
        valid_loss=number(_first(metrics, CHECKPOINT_VALID_KEYS)),
        checkpoint_id=checkpoint.id,
    )


def _merge(old: EpochPoint | None, new: EpochPoint) -> EpochPoint:
    """The checkpoint's figures win; what it lacks is kept from the epoch's event."""
    if old is None:
        return new
    return EpochPoint(
        step=new.step,
        epoch=new.epoch if new.epoch is not None else old.epoch,
        train_loss=new.train_loss if new.train_loss is not None else old.train_loss,
        valid_loss=new.valid_loss if new.valid_loss is not None else old.valid_loss,
        checkpoint_id=new.checkpoint_id or old.checkpoint_id,
    )


def _epochs_planned(job: Job) -> int | None:
    return _integer(job.effective_hyperparameters.get("n_epochs"))


def loss_curve(job: Job, events: Iterable[Event], checkpoints: Sequence[Checkpoint]) -> LossCurve:
    """The job's curve. `events` oldest to newest (as `NebiusClient.iter_events` gives them):
    a step reported twice (a resumed job repeats steps) keeps its newest figures."""
    steps: dict[int, StepPoint] = {}
    epochs: dict[int, EpochPoint] = {}
    total_steps = job.total_steps
    for event in events:
        data, epoch_end = _figures(event)
        step = _integer(_first(data, STEP_KEYS))
        if step is None:
            continue
        total_steps = _integer(data.get("total_steps")) or total_steps
        epoch = _integer(_first(data, EPOCH_KEYS))
        if epoch_end:
            epochs[step] = EpochPoint(
                step=step,
                epoch=epoch,
                train_loss=number(_first(data, TRAIN_LOSS_KEYS)),
                valid_loss=number(_first(data, VALID_LOSS_KEYS)),
            )
            continue
        loss = number(_first(data, TRAIN_LOSS_KEYS))
        lr = number(_first(data, LEARNING_RATE_KEYS))
        if loss is not None or lr is not None:
            steps[step] = StepPoint(step, loss, lr, epoch)

    ordered = sorted(checkpoints, key=lambda c: (c.step_number, c.created_at or 0))
    # Nebius saves one checkpoint per epoch (its cookbook): number them so when they fit.
    planned = _epochs_planned(job)
    per_epoch = planned is not None and len(ordered) <= planned
    for index, checkpoint in enumerate(ordered):
        point = _checkpoint_point(checkpoint, index + 1 if per_epoch else None)
        if point is not None:
            epochs[point.step] = _merge(epochs.get(point.step), point)

    curve = LossCurve(
        job_id=job.id,
        model=job.model,
        status=job.status,
        steps=[steps[s] for s in sorted(steps)],
        epochs=[epochs[s] for s in sorted(epochs)],
        best=best_checkpoint(ordered),
        total_steps=total_steps,
    )
    curve.missing = _missing(curve, job, ordered)
    return curve


def _missing(curve: LossCurve, job: Job, checkpoints: Sequence[Checkpoint]) -> list[str]:
    missing: list[str] = []
    if not curve.train_losses:
        per_checkpoint = bool(curve.epoch_train_losses)
        missing.append(TRAINING_LOSS_PER_CHECKPOINT if per_checkpoint else NO_TRAINING_LOSS)
    if not curve.valid_losses:
        if not job.validation_file:
            missing.append(NO_VALIDATION_FILE)
        elif not curve.epochs:
            missing.append(NO_VALIDATION_YET)
        else:
            missing.append(NO_VALIDATION_REPORTED)
    if not curve.learning_rates:
        missing.append(NO_LEARNING_RATE)
    if not checkpoints:
        missing.append(NO_CHECKPOINTS)
    elif curve.best is not None and curve.best.chosen_by == "last":
        missing.append(BEST_IS_LAST)
    return missing
