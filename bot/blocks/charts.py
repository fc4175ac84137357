"""Messages of the loss chart: the Chart button, the comment under the uploaded PNG (a
one-line sparkline and what the chart could not show), and the text said instead of a chart
where none can be drawn."""

from __future__ import annotations

from typing import Any

from bot.blocks.common import button, clip, text_message
from bot.blocks.ids import Actions
from bot.chat_interface import Message
from client import Job
from client.charts import LossCurve

# A chart means something once training has begun; before that it would be empty.
CHART_STATUSES = ("running", "succeeded", "failed", "cancelled")
# Slack's initial comment of a file is a message: well inside its 4,000 advisable characters.
COMMENT_CHARS = 1500


def chart_button(job: Job) -> list[dict[str, Any]]:
    """The card's Chart button (none before training has begun)."""
    if job.status not in CHART_STATUSES:
        return []
    return [button("Chart", Actions.SHOW_CHART, job.id)]


def chart_title(job_id: str) -> str:
    return f"Loss chart of {job_id}"


def chart_filename(job_id: str) -> str:
    return f"loss-{job_id}.png"


def _lines(curve: LossCurve, sparkline: str | None) -> list[str]:
    lines = [f"`{sparkline}`" if sparkline else "No training loss reported yet."]
    if curve.missing:
        lines.append("Not shown: " + "; ".join(curve.missing) + ".")
    return lines


def chart_comment(curve: LossCurve, sparkline: str | None) -> str:
    """The line under the chart: the loss as a sparkline, then what is missing."""
    head = f":chart_with_downwards_trend: Loss of job `{curve.job_id}`"
    return clip("\n".join([head, *_lines(curve, sparkline)]), COMMENT_CHARS)


def chart_unavailable_message(curve: LossCurve, sparkline: str | None, problem: str) -> Message:
    """No PNG (matplotlib missing, say): the sparkline says what it can."""
    head = f":chart_with_downwards_trend: Loss of job `{curve.job_id}` (no chart: {problem})"
    text = clip("\n".join([head, *_lines(curve, sparkline)]), COMMENT_CHARS)
    return text_message(text)


def chart_requested_message(job_id: str, user: str) -> Message:
    """The parent of a chart asked for outside the job's own thread."""
    text = f":chart_with_downwards_trend: <@{user}> asked for the loss chart of job `{job_id}`."
    return text_message(text)


def chart_busy_message(job_id: str) -> Message:
    text = f"The loss chart of job `{job_id}` is being drawn already; it comes in a moment."
    return text_message(text)
