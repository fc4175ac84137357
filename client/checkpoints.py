"""Which checkpoint of a job to use: one named by id or step, or by default the best one.

Nebius keeps one checkpoint per epoch, and the lowest validation loss is often not at the
last one, so `finetune download`, `finetune deploy`, the loss chart and the bot all choose
here: the lowest `valid_loss` (the earliest of equals), or the last checkpoint when none has
a validation loss (a job without a validation file).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from client.models import Checkpoint

# A checkpoint's validation loss: Nebius's sampled one, else the full one.
CHECKPOINT_VALID_KEYS = ("valid_loss", "full_valid_loss")
CHECKPOINT_TRAIN_KEYS = ("train_loss", "training_loss", "loss")

# "valid_loss": the lowest validation loss; "last": none to choose by, so the last one;
# "id" / "step": the one asked for.
ChosenBy = Literal["valid_loss", "last", "id", "step"]


def number(value: Any) -> float | None:
    """A finite float from a JSON number or numeric string; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def metric(metrics: Mapping[str, Any] | None, keys: Sequence[str]) -> float | None:
    """The first of `keys` in `metrics` that holds a finite number."""
    for key in keys:
        found = number((metrics or {}).get(key))
        if found is not None:
            return found
    return None


def by_step(checkpoints: Sequence[Checkpoint]) -> list[Checkpoint]:
    """Oldest first: Nebius does not promise an order."""
    return sorted(checkpoints, key=lambda c: (c.step_number, c.created_at or 0))


@dataclass(frozen=True)
class ChosenCheckpoint:
    checkpoint: Checkpoint
    chosen_by: ChosenBy

    @property
    def id(self) -> str:
        return self.checkpoint.id

    @property
    def step(self) -> int:
        return self.checkpoint.step_number

    @property
    def train_loss(self) -> float | None:
        return metric(self.checkpoint.metrics, CHECKPOINT_TRAIN_KEYS)

    @property
    def valid_loss(self) -> float | None:
        return metric(self.checkpoint.metrics, CHECKPOINT_VALID_KEYS)

    def describe(self) -> str:
        """One line saying which checkpoint and why: "best checkpoint: step 40, valid loss
        1.318"."""
        loss = f", valid loss {self.valid_loss:.4g}" if self.valid_loss is not None else ""
        if self.chosen_by == "valid_loss":
            return f"best checkpoint: step {self.step}{loss} ({self.id})"
        if self.chosen_by == "last":
            return (
                f"last checkpoint: step {self.step} ({self.id}); "
                "no validation loss to choose the best by"
            )
        return f"checkpoint {self.id}: step {self.step}{loss}"


class CheckpointNotFound(LookupError):
    """The job has no checkpoint of that id or step (or none at all)."""

    def __init__(self, wanted: str | None, available: Sequence[Checkpoint]) -> None:
        self.wanted = wanted
        self.available = list(available)
        super().__init__(
            "the job has no checkpoints yet"
            if not self.available
            else f"no checkpoint {wanted!r}; this job has: {self.known}"
        )

    @property
    def known(self) -> str:
        return ", ".join(f"{c.id} (step {c.step_number})" for c in self.available)


def best_checkpoint(checkpoints: Sequence[Checkpoint]) -> ChosenCheckpoint | None:
    """The checkpoint with the lowest validation loss (the earliest of equals); the last one
    when none has a validation loss; None without checkpoints."""
    ordered = by_step(checkpoints)
    if not ordered:
        return None
    scored = [(c, metric(c.metrics, CHECKPOINT_VALID_KEYS)) for c in ordered]
    with_valid = [(c, v) for c, v in scored if v is not None]
    if with_valid:
        return ChosenCheckpoint(min(with_valid, key=lambda item: item[1])[0], "valid_loss")
    return ChosenCheckpoint(ordered[-1], "last")


def choose_checkpoint(
    checkpoints: Sequence[Checkpoint], wanted: str | None = None
) -> ChosenCheckpoint:
    """The checkpoint whose id or step is `wanted`, or the best one when `wanted` is empty.
    Raises CheckpointNotFound (its message lists the checkpoints there are)."""
    ordered = by_step(checkpoints)
    wanted = (wanted or "").strip() or None
    if wanted is None:
        best = best_checkpoint(ordered)
        if best is None:
            raise CheckpointNotFound(None, ordered)
        return best
    for checkpoint in ordered:
        if checkpoint.id == wanted:
            return ChosenCheckpoint(checkpoint, "id")
    for checkpoint in ordered:
        if str(checkpoint.step_number) == wanted:
            return ChosenCheckpoint(checkpoint, "step")
    raise CheckpointNotFound(wanted, ordered)
