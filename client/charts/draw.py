"""A loss curve drawn as a PNG with matplotlib's Agg renderer.

matplotlib is imported inside `draw_loss_chart`, so the client stays light for everything
else. The figure is built without pyplot: no global state, no GUI backend, safe from a thread.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from typing import Any

from client.charts.curve import BestCheckpoint, LossCurve
from client.charts.sparkline import figure
from client.models import TERMINAL_STATUSES

# 1000×600 pixels: readable at Slack's preview size (it asks for at least 800×500).
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 6.0, 100
WIDTH_PX, HEIGHT_PX = int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI)

# Okabe & Ito's palette ("Color Universal Design", 2008): told apart with every common
# colour-vision deficiency. Each series also has its own line style or marker.
BLUE = "#0072B2"
VERMILLION = "#D55E00"
GREEN = "#009E73"
PURPLE = "#CC79A7"
SKY_BLUE = "#56B4E9"
BLACK = "#000000"
GREY = "#6E6E6E"

# The names of the series, as the legend shows them and `Chart.series` counts them.
TRAINING = "training loss"
TRAINING_SMOOTHED = "training loss (smoothed)"
TRAINING_PER_CHECKPOINT = "training loss per checkpoint"
VALIDATION = "validation loss"
LEARNING_RATE = "learning rate"
BEST = "best checkpoint"

# From this many points the raw training loss is drawn faint, under a smoothed line.
SMOOTH_FROM = 30
SMOOTH_WINDOW_DIVISOR = 12  # the smoothing window: a twelfth of the points
NOTE_WIDTH = 125  # characters per line of the "not shown" note
TITLE_POINTS, TITLE_MIN_POINTS = 15, 10  # a long title is set smaller to fit, down to this
TITLE_CHARS = 92  # the most the title line holds at its smallest


class ChartError(RuntimeError):
    """The chart cannot be drawn here (matplotlib missing)."""


@dataclass(frozen=True)
class Chart:
    png: bytes
    width: int
    height: int
    # Each series drawn and its number of points, e.g. {"training loss": 60, ...}.
    series: dict[str, int] = field(default_factory=dict)
    best: BestCheckpoint | None = None
    missing: list[str] = field(default_factory=list)


def smoothed(values: list[float]) -> list[float]:
    """A centred moving average (narrower at the ends): unlike an exponential one it does
    not lag behind the raw curve, so the two read as one."""
    half = max(1, len(values) // SMOOTH_WINDOW_DIVISOR // 2)
    out: list[float] = []
    for i in range(len(values)):
        reach = min(half, i, len(values) - 1 - i)
        window = values[i - reach : i + reach + 1]
        out.append(sum(window) / len(window))
    return out


def rate_label(value: float, _position: object = None) -> str:
    """A learning rate as a tick label: 5e-5, 2.5e-5, 0."""
    if value == 0:
        return "0"
    return f"{value:.2g}".replace("e-0", "e-").replace("e+0", "e+")


def title_lines(curve: LossCurve) -> tuple[str, str]:
    """The title: the job and model, then its status and final figures."""
    head = f"{curve.job_id} · {curve.model}" if curve.model else curve.job_id
    if len(head) > TITLE_CHARS:  # longer than fits even when set small (see _fit)
        head = head[: TITLE_CHARS - 1] + "…"
    parts: list[str] = [curve.status or "status unknown"]
    last_step = max((p.step for p in [*curve.steps, *curve.epochs]), default=None)
    if last_step is not None:
        total = curve.total_steps
        parts.append(
            f"step {last_step}/{total}" if total and total >= last_step else f"step {last_step}"
        )
    # A job still running has no final figures yet, only its latest.
    final = "final" if curve.status in TERMINAL_STATUSES else "latest"
    if (train := curve.final_train_loss) is not None:
        parts.append(f"{final} train loss {figure(train)}")
    if (valid := curve.final_valid_loss) is not None:
        parts.append(f"{final} valid loss {figure(valid)}")
    if curve.best is not None:
        best = f"best: step {curve.best.step}"
        if curve.best.valid_loss is not None:
            best += f" (valid {figure(curve.best.valid_loss)})"
        parts.append(best)
    return head, " · ".join(parts)


def _import_matplotlib() -> tuple[Any, Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ChartError("drawing a chart needs matplotlib: pip install 'matplotlib>=3.8'") from exc
    return Figure, FigureCanvasAgg, MaxNLocator


def draw_loss_chart(curve: LossCurve) -> Chart:
    """The curve as a WIDTH_PX×HEIGHT_PX PNG: training loss by step, validation loss by
    epoch, the best checkpoint starred, the learning rate in a panel below; what is missing
    is written under the plot."""
    Figure, FigureCanvasAgg, MaxNLocator = _import_matplotlib()
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    series: dict[str, int] = {}
    rates = curve.learning_rates
    note = "Not shown: " + "; ".join(curve.missing) if curve.missing else ""
    note_lines = textwrap.wrap(note, NOTE_WIDTH) if note else []
    bottom = 0.1 + 0.035 * len(note_lines)
    if rates:
        loss_ax, lr_ax = fig.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": [3.2, 1], "hspace": 0.08}
        )
    else:
        loss_ax, lr_ax = fig.subplots(1, 1), None
    fig.subplots_adjust(left=0.085, right=0.975, top=0.82, bottom=bottom)

    head, figures = title_lines(curve)
    _fit(fig, fig.text(0.5, 0.955, head, ha="center", va="center", fontweight="bold"))
    fig.text(0.5, 0.905, figures, ha="center", va="center", fontsize=12, color="#333333")
    if note_lines:
        fig.text(0.01, 0.012, "\n".join(note_lines), fontsize=10, color=GREY, va="bottom")

    _x_range(loss_ax, curve)  # first: where the best checkpoint's label goes depends on it
    _draw_losses(loss_ax, curve, series)
    if lr_ax is not None:
        steps, values = zip(*rates, strict=True)
        lr_ax.plot(steps, values, color=GREEN, linewidth=2, linestyle="-.", label=LEARNING_RATE)
        series[LEARNING_RATE] = len(values)
        lr_ax.set_ylabel(LEARNING_RATE, fontsize=11)
        lr_ax.yaxis.set_major_formatter(rate_label)
        lr_ax.yaxis.set_major_locator(MaxNLocator(3))
        lr_ax.set_ylim(bottom=0)
        _style(lr_ax)
    (lr_ax or loss_ax).set_xlabel("step", fontsize=12)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Title": f"Loss of {curve.job_id}"})
    return Chart(
        png=buffer.getvalue(),
        width=WIDTH_PX,
        height=HEIGHT_PX,
        series=series,
        best=curve.best,
        missing=list(curve.missing),
    )


def _fit(fig: Any, text: Any) -> None:
    """Sets the title as large as fits the figure's width (TITLE_MIN_POINTS at least)."""
    text.set_fontsize(TITLE_POINTS)
    width = text.get_window_extent(renderer=fig.canvas.get_renderer()).width
    room = WIDTH_PX * 0.96
    if width > room:
        text.set_fontsize(max(TITLE_MIN_POINTS, TITLE_POINTS * room / width))


def _style(ax: Any) -> None:
    ax.grid(True, color="#DDDDDD", linewidth=0.8)
    ax.tick_params(labelsize=11)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _x_range(ax: Any, curve: LossCurve) -> None:
    """From step 0 to the job's last step: a running job shows how far it has to go."""
    last = max((p.step for p in [*curve.steps, *curve.epochs]), default=0)
    end = max(last, curve.total_steps or 0)
    if end > 0:
        ax.set_xlim(0, end * 1.02)


def _draw_losses(ax: Any, curve: LossCurve, series: dict[str, int]) -> None:
    _style(ax)
    ax.set_ylabel("loss", fontsize=12)
    if curve.is_empty:
        ax.text(
            0.5, 0.5, "No loss figures yet", transform=ax.transAxes, ha="center", va="center",
            fontsize=18, color=GREY,
        )  # fmt: skip
        ax.set_yticks([])
        if not curve.total_steps:
            ax.set_xticks([])  # no steps to count yet
        return

    if train := curve.train_losses:
        steps, values = (list(t) for t in zip(*train, strict=True))
        if len(values) >= SMOOTH_FROM:
            ax.plot(steps, values, color=SKY_BLUE, linewidth=1.2, alpha=0.7, label=TRAINING)
            ax.plot(steps, smoothed(values), color=BLUE, linewidth=2.6, label=TRAINING_SMOOTHED)
            series[TRAINING_SMOOTHED] = len(values)
        else:
            ax.plot(steps, values, color=BLUE, linewidth=2.2, marker=".", label=TRAINING)
        series[TRAINING] = len(values)
    elif per_checkpoint := curve.epoch_train_losses:
        steps, values = zip(*per_checkpoint, strict=True)
        ax.plot(
            steps, values, color=BLUE, linewidth=2.2, marker="s", markersize=7,
            label=TRAINING_PER_CHECKPOINT,
        )  # fmt: skip
        series[TRAINING_PER_CHECKPOINT] = len(values)

    if valid := curve.valid_losses:
        steps, values = zip(*valid, strict=True)
        ax.plot(
            steps, values, color=VERMILLION, linewidth=2.2, linestyle="--", marker="o",
            markersize=8, label=VALIDATION,
        )  # fmt: skip
        series[VALIDATION] = len(values)

    # Epoch ends as faint lines, named where the epoch is known.
    for point in curve.epochs:
        ax.axvline(point.step, color="#BBBBBB", linewidth=1, linestyle=":", zorder=0)
        if point.epoch is not None:
            ax.text(
                point.step, 0.985, f"epoch {point.epoch} ", transform=ax.get_xaxis_transform(),
                ha="right", va="top", fontsize=10, color=GREY,
            )  # fmt: skip

    low, high = ax.get_ylim()
    ax.set_ylim(low, high + (high - low) * 0.12)  # room for the epoch names
    if curve.best is not None:
        _mark_best(ax, curve)
        series[BEST] = 1
    # One row above the plot: inside it, a legend hides whatever sits in its corner.
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(labels),
        fontsize=11, frameon=False, handlelength=2.4, columnspacing=1.6,
    )  # fmt: skip


def _mark_best(ax: Any, curve: LossCurve) -> None:
    best = curve.best
    assert best is not None
    y = best.valid_loss if best.valid_loss is not None else best.train_loss
    if y is None:  # a checkpoint without metrics: mark its step
        ax.axvline(best.step, color=PURPLE, linewidth=2.5, label=BEST)
        return
    ax.plot(
        [best.step], [y], linestyle="none", marker="*", markersize=22, color=PURPLE,
        markeredgecolor=BLACK, markeredgewidth=1.2, zorder=5, label=BEST,
    )  # fmt: skip
    which = "valid" if best.valid_loss is not None else "train"
    text = f"best checkpoint · step {best.step}\n{which} loss {figure(y)}"
    left, right = ax.get_xlim()
    near_right = best.step > left + (right - left) * 0.75
    ax.annotate(
        text, (best.step, y), xytext=(-14 if near_right else 14, 34), textcoords="offset points",
        ha="right" if near_right else "left", va="bottom", fontsize=11,
        bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": PURPLE},
        arrowprops={"arrowstyle": "-", "color": PURPLE, "linewidth": 1.2},
    )  # fmt: skip
