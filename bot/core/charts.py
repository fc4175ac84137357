"""A job's loss chart in its thread: drawn from all of its events (their `data`, else their
messages) and its checkpoints' metrics by `client.charts`, uploaded as a PNG (Slack's external
upload; the console saves it under the data folder and prints the path) with a one-line
sparkline of the loss under it.

It comes when the job ends (the watcher, once: an outbox entry of kind "chart" claims it
across restarts), with `/finetune chart JOB`, and with the card's Chart button. Per epoch it
does not come by itself: a long run would fill its thread; the button shows it at any time.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.blocks.charts import (
    chart_busy_message,
    chart_comment,
    chart_filename,
    chart_requested_message,
    chart_title,
    chart_unavailable_message,
)
from bot.chat_interface import Chat, ChatError, MessageRef, check_post_fence, post_fence
from bot.core.requests import ButtonClick, CommandRequest, ParsedCommand
from bot.store import Store, Watch
from client import Checkpoint, Job, NebiusClient
from client.charts import ChartError, LossCurve, draw_loss_chart, loss_curve, loss_sparkline

if TYPE_CHECKING:
    from bot.core.commands import CommandRunner

log = logging.getLogger(__name__)

# The outbox kind of the chart posted when a job ends.
CHART_KIND = "chart"


async def job_curve(
    nebius: NebiusClient, job: Job, checkpoints: list[Checkpoint] | None = None
) -> LossCurve:
    """The job's curve from all of its events, oldest first, and its checkpoints."""
    events = [event async for event in nebius.iter_events(job.id)]
    if checkpoints is None:
        checkpoints = await nebius.list_checkpoints(job.id)
    return loss_curve(job, events, checkpoints)


async def post_chart(chat: Chat, curve: LossCurve, where: MessageRef) -> str | None:
    """Uploads the curve's chart into the thread `where`, the sparkline under it; returns
    the chat's file id, or None when no PNG could be drawn (then the text is posted)."""
    sparkline = loss_sparkline(curve)
    try:
        # matplotlib takes a good part of a second: off the event loop.
        chart = await asyncio.to_thread(draw_loss_chart, curve)
    except ChartError as error:
        message = chart_unavailable_message(curve, sparkline, str(error))
        await chat.post(where.channel, message, thread_ts=where.ts)
        return None
    with tempfile.TemporaryDirectory(prefix="xgenlens-chart-") as tmp:
        path = Path(tmp) / chart_filename(curve.job_id)
        path.write_bytes(chart.png)
        return await chat.upload_file(
            where.channel,
            path,
            filename=path.name,
            title=chart_title(curve.job_id),
            thread_ts=where.ts,
            comment=chart_comment(curve, sparkline),
        )


async def chart_at_end(
    store: Store,
    chat: Chat,
    nebius: NebiusClient,
    watch: Watch,
    job: Job,
    checkpoints: list[Checkpoint] | None,
    *,
    fence: Callable[[], bool] | None = None,
) -> None:
    """The chart of a job that ended, into its thread once (the watcher, before the summary).
    `fence`: whether this process may still post in the thread (the watcher's lease).

    A chart already posted (before a restart) is not posted again. A job that reported no
    loss at all gets none (it would only say so); Chart draws it on demand. When Slack
    refuses the file, the summary still comes: the chart is given up, not retried forever.
    """
    if await store.outbox_posted(job.id, CHART_KIND):
        return
    curve = await job_curve(nebius, job, checkpoints or None)  # NebiusError: the poll retries
    if curve.is_empty:
        return
    entry = await store.outbox_intent(job.id, CHART_KIND, watch.channel, watch.thread_ts)
    token = post_fence.set(fence)
    try:
        check_post_fence()  # PostFenced: discarded below, and the next holder posts it
        file_id = await post_chart(chat, curve, MessageRef(watch.channel, watch.thread_ts))
    except ChatError as error:
        log.warning("the loss chart of %s was not posted: %s", job.id, error)
        await store.outbox_done(entry, None)  # given up: the summary must not wait on it
        return
    except asyncio.CancelledError:
        raise  # a shutdown: the entry stays pending, and a restart settles it
    except Exception:
        # No answer: most likely nothing arrived, and the next poll draws it again.
        await store.outbox_discard(entry)
        raise
    finally:
        post_fence.reset(token)
    await store.outbox_done(entry, file_id)


class Charts:
    """The chart on demand (command and button): drawn once at a time per job and thread, so
    a double click does not upload it twice."""

    def __init__(self, chat: Chat) -> None:
        self.chat = chat
        self._drawing: set[tuple[str, str, str]] = set()

    async def show(
        self, nebius: NebiusClient, job_id: str, where: MessageRef, *, user: str
    ) -> bool:
        """False (and a note to `user`) when this chart is being drawn already."""
        key = (job_id, where.channel, where.ts)
        if key in self._drawing:
            await self.chat.ephemeral(where.channel, user, chart_busy_message(job_id))
            return False
        self._drawing.add(key)
        try:
            job = await nebius.retrieve_job(job_id)
            await post_chart(self.chat, await job_curve(nebius, job), where)
        finally:
            self._drawing.discard(key)
        return True


async def _where(runner: CommandRunner, job_id: str, channel: str, user: str) -> MessageRef:
    """The job's own thread when it is followed in this channel, else a new one here."""
    watch = await runner.store.watch(job_id)
    if watch is not None and watch.channel == channel:
        return MessageRef(watch.channel, watch.thread_ts)
    return await runner.chat.post(channel, chart_requested_message(job_id, user))


async def chart_command(
    runner: CommandRunner, request: CommandRequest, command: ParsedCommand
) -> None:
    """`/finetune chart JOB`."""
    job_id = command.args[0]
    await runner.api.retrieve_job(job_id)  # an unknown job is said before anything is posted
    where = await _where(runner, job_id, request.channel, request.user)
    await runner.charts.show(runner.api, job_id, where, user=request.user)


async def chart_button(runner: CommandRunner, click: ButtonClick) -> None:
    """The card's Chart button: into the card's thread."""
    ts = click.thread_ts or click.message_ts
    if ts is None or click.ephemeral:
        where = await _where(runner, click.value, click.channel, click.user)
    else:
        where = MessageRef(click.channel, ts)
    await runner.charts.show(runner.api, click.value, where, user=click.user)
