"""A loss curve as one line of text, for a chat thread or a terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence

from client.charts.curve import LossCurve

BLOCKS = "▁▂▃▄▅▆▇█"
# At most this many blocks: a line that fits a Slack message and a narrow terminal.
SPARKLINE_WIDTH = 40


def _buckets(values: Sequence[float], width: int) -> list[float]:
    """`values` averaged down to at most `width` points, each bucket in order."""
    if len(values) <= width:
        return list(values)
    n = len(values)
    return [
        sum(chunk) / len(chunk)
        for i in range(width)
        if (chunk := values[i * n // width : (i + 1) * n // width])
    ]


def sparkline(values: Sequence[float], width: int = SPARKLINE_WIDTH) -> str:
    """Block characters from lowest (▁) to highest (█); non-finite values are left out;
    "" when nothing is left."""
    finite = [float(v) for v in values if math.isfinite(v)]
    points = _buckets(finite, max(1, width))
    if not points:
        return ""
    low, high = min(points), max(points)
    if high - low <= 1e-12 * max(1.0, abs(high)):
        return BLOCKS[len(BLOCKS) // 2 - 1] * len(points)  # flat: a level line mid-height
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((v - low) / (high - low) * top)] for v in points)


def figure(value: float) -> str:
    """A loss as the chart and the sparkline print it."""
    return f"{value:.4g}"


def loss_sparkline(curve: LossCurve, width: int = SPARKLINE_WIDTH) -> str | None:
    """One line such as `loss 2.41 ▇▆▅▄▃▂▁ 0.84 (60 steps)`: training loss by step, or per
    checkpoint when the events carry none; None when there is no training loss at all."""
    if curve.train_losses:
        series, unit = curve.train_losses, "step"
    elif curve.epoch_train_losses:
        from_checkpoints = all(p.checkpoint_id for p in curve.epochs if p.train_loss is not None)
        series, unit = curve.epoch_train_losses, "checkpoint" if from_checkpoints else "epoch"
    else:
        return None
    values = [loss for _, loss in series]
    count = f"{len(values)} {unit}{'' if len(values) == 1 else 's'}"
    return f"loss {figure(values[0])} {sparkline(values, width)} {figure(values[-1])} ({count})"
