"""A checkpoint's files, streamed from Nebius into a Slack thread (external upload)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from bot.blocks.jobs import download_too_large_message, job_step_message
from bot.chat_interface import Chat, MessageRef
from client import Checkpoint, NebiusClient, clean_filename
from client.checkpoints import CheckpointNotFound, choose_checkpoint

log = logging.getLogger(__name__)

# Slack refuses files over 1 GB.
SLACK_MAX_FILE_BYTES = 1024 * 1024 * 1024


class DownloadError(ValueError):
    """The checkpoint or file asked for does not exist; the message says what does."""


def pick_checkpoint(checkpoints: list[Checkpoint], wanted: str | None) -> Checkpoint:
    """The checkpoint named by id or step, or the best one (client.checkpoints' rule)."""
    try:
        return choose_checkpoint(checkpoints, wanted).checkpoint
    except CheckpointNotFound as exc:
        if not exc.available:
            raise DownloadError("the job has no checkpoints yet") from None
        raise DownloadError(f"no checkpoint `{wanted}`; the job has: {exc.known}") from None


async def upload_checkpoint(
    chat: Chat,
    nebius: NebiusClient,
    job_id: str,
    checkpoint: Checkpoint,
    where: MessageRef,
    *,
    max_bytes: int = SLACK_MAX_FILE_BYTES,
) -> int:
    """Uploads each result file of the checkpoint into the thread; returns how many."""
    files = await nebius.checkpoint_files(checkpoint)
    step = await chat.post(
        where.channel,
        job_step_message(f"Fetching {len(files)} file(s) of checkpoint `{checkpoint.id}`…"),
        thread_ts=where.ts,
    )
    sent = 0
    for info in files:
        name = clean_filename(info.filename, fallback=info.id)
        if info.bytes is not None and info.bytes > max_bytes:
            await chat.post(
                where.channel,
                download_too_large_message(job_id, checkpoint.id, name, info.bytes),
                thread_ts=where.ts,
            )
            continue
        with tempfile.TemporaryDirectory(prefix="xgenlens-ckpt-") as tmp:
            path = Path(tmp) / name
            size = await nebius.download_file(info.id, path)
            if size > max_bytes:
                await chat.post(
                    where.channel,
                    download_too_large_message(job_id, checkpoint.id, name, size),
                    thread_ts=where.ts,
                )
                continue
            await chat.upload_file(
                where.channel,
                path,
                filename=name,
                title=f"{name} (checkpoint {checkpoint.id}, step {checkpoint.step_number})",
                thread_ts=where.ts,
            )
            sent += 1
    await chat.update(
        step, job_step_message(f"Checkpoint `{checkpoint.id}`: {sent} file(s) uploaded.")
    )
    return sent
