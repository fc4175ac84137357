"""Slack's file objects, as the core's `SharedFile`."""

from __future__ import annotations

from typing import Any

from bot.chat import SharedFile


def shared_files(event: dict[str, Any]) -> list[SharedFile]:
    """The files of a `message` event with subtype `file_share`."""
    channel = event.get("channel", "")
    # A file shared inside a thread is answered in that thread.
    ts = event.get("thread_ts") or event.get("ts")
    files = []
    for raw in event.get("files") or []:
        if not raw.get("id"):
            continue
        files.append(
            SharedFile(
                id=raw["id"],
                name=raw.get("name") or raw.get("title") or raw["id"],
                channel=channel,
                message_ts=ts,
                user=event.get("user") or raw.get("user"),
                size=raw.get("size"),
                download_url=raw.get("url_private_download"),
            )
        )
    return files
