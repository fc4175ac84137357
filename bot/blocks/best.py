"""The end-of-job summary's word on checkpoints: which is the best and why, and how far
training moved the validation loss from the base model's ("validation loss 3.57 → 3.51
(−1.7 %) at epoch 3"). The choice itself is `client.checkpoints.best_checkpoint`'s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from client import Checkpoint, Job
from client.checkpoints import ChosenCheckpoint, by_step, metric, number

BASE_VALID_KEY = "base_valid_loss"
MINUS = "\u2212"


def best_mark(chosen: ChosenCheckpoint) -> str:
    """What the best checkpoint's line says after its metrics: the word and the reason."""
    if chosen.chosen_by == "valid_loss":
        return ":star: *best* (lowest validation loss)"
    return ":star: *best* (the last one: no validation loss to choose by)"


def base_valid_loss(job: Job, checkpoints: Sequence[Checkpoint]) -> float | None:
    """The base model's validation loss before training, where the server gives it: the
    job's `base_valid_loss` (the local engine) or a checkpoint's metrics; None on Nebius,
    which gives no such figure (then nothing is said rather than guessed)."""
    extra: dict[str, Any] = job.model_extra or {}
    found = number(extra.get(BASE_VALID_KEY))
    if found is not None:
        return found
    for checkpoint in by_step(checkpoints):
        found = metric(checkpoint.metrics, (BASE_VALID_KEY,))
        if found is not None:
            return found
    return None


def _loss(value: float, other: float) -> str:
    # Three figures, more where they would make two different losses look the same.
    for digits in (3, 4, 5):
        if f"{value:.{digits}g}" != f"{other:.{digits}g}":
            return f"{value:.{digits}g}"
    return f"{value:.3g}"


def _when(chosen: ChosenCheckpoint, checkpoints: Sequence[Checkpoint], job: Job) -> str:
    """ "at epoch 3" where the epoch is known (the checkpoint says, or one checkpoint per
    epoch as Nebius keeps them), else "at step 40"."""
    epoch = number((chosen.checkpoint.metrics or {}).get("epoch"))
    if epoch is not None and epoch == int(epoch):
        return f"at epoch {int(epoch)}"
    ordered = by_step(checkpoints)
    epochs = job.effective_hyperparameters.get("n_epochs")
    if isinstance(epochs, int) and not isinstance(epochs, bool) and len(ordered) == epochs:
        position = [c.id for c in ordered].index(chosen.id) + 1
        return f"at epoch {position}"
    return f"at step {chosen.step:,}"


def improvement_text(
    job: Job, checkpoints: Sequence[Checkpoint], chosen: ChosenCheckpoint
) -> str | None:
    """`validation loss 3.57 → 3.51 (−1.7 %) at epoch 3`, or None without both figures."""
    base = base_valid_loss(job, checkpoints)
    best = chosen.valid_loss
    if base is None or best is None or base <= 0:
        return None
    change = (best - base) / base * 100
    sign = MINUS if change < 0 else "+"
    return (
        f"validation loss {_loss(base, best)} → {_loss(best, base)} "
        f"({sign}{abs(change):.1f} %) {_when(chosen, checkpoints, job)}"
    )
