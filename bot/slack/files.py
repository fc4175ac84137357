"""Slack's file objects, as the core's `SharedFile`."""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.chat_interface import ChatError, SharedFile


def is_id_only(raw: dict[str, Any]) -> bool:
    """Slack Connect channels, and files Slack is still processing, give a message event only
    `{"id", "mode": "file_access", "file_access": "check_file_info"}`: the rest is for
    files.info to say."""
    return (
        raw.get("mode") == "file_access"
        or raw.get("file_access") == "check_file_info"
        or not (raw.get("name") or raw.get("title"))
    )


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
                user=event.get("user") or raw.get("user") or None,
                size=raw.get("size"),
                download_url=raw.get("url_private_download"),
                id_only=is_id_only(raw),
            )
        )
    return files


def completed_file(file: SharedFile, info: dict[str, Any]) -> SharedFile:
    """`file`, named by id only, completed from the file object files.info answered with."""
    name = info.get("name") or info.get("title")
    if is_id_only(info) or not name:
        # Slack still will not show it: no access from this workspace, or no file any more.
        access = info.get("file_access") or "no name"
        raise ChatError(f"Slack does not show the bot this file ({access}).")
    return dataclasses.replace(
        file,
        name=name,
        user=file.user or info.get("user") or None,
        size=info.get("size", file.size),
        download_url=info.get("url_private_download") or file.download_url,
        id_only=False,
    )
