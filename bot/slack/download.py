"""Fetching a shared file from Slack: streamed, capped, and only from Slack's own hosts."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from bot.chat_interface import ChatError, FileTooLarge, ProgressCallback, save_chunks

CHUNK_BYTES = 256 * 1024
MAX_REDIRECTS = 3

MISSING_SCOPE = (
    "Slack answered with a web page instead of the file, which means the app lacks the "
    "`files:read` scope. Add it (it is in manifest.yml), reinstall the app to the workspace, "
    "and share the file again."
)


async def download_slack_file(
    http: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    bot_token: str,
    allowed_hosts: frozenset[str],
    max_bytes: int,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Streams `url` to `dest` with the bot token; returns the number of bytes written."""
    for _ in range(MAX_REDIRECTS + 1):
        host = (urlsplit(url).hostname or "").lower()
        if host not in allowed_hosts:
            # The bot token must never be sent anywhere but Slack.
            raise ChatError(f"the file's address is not on Slack's file hosts ({host or url!r}).")
        request = http.build_request("GET", url, headers={"Authorization": f"Bearer {bot_token}"})
        try:
            response = await http.send(request, stream=True)
        except httpx.HTTPError as error:
            raise ChatError(
                f"could not download the file from Slack ({type(error).__name__})."
            ) from None
        try:
            if response.is_redirect and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                continue
            return await _save(response, dest, max_bytes, on_progress)
        finally:
            await response.aclose()
    raise ChatError("Slack redirected the download too many times.")


async def _save(
    response: httpx.Response,
    dest: Path,
    max_bytes: int,
    on_progress: ProgressCallback | None,
) -> int:
    if response.status_code != 200:
        raise ChatError(f"Slack answered the download with HTTP {response.status_code}.")
    if "text/html" in response.headers.get("content-type", "").lower():
        raise ChatError(MISSING_SCOPE)
    declared = response.headers.get("content-length")
    total = int(declared) if declared and declared.isdigit() else None
    if total is not None and total > max_bytes:
        raise FileTooLarge(f"the file is {total} bytes; the limit is {max_bytes}.")
    return await save_chunks(
        response.aiter_bytes(CHUNK_BYTES),
        dest,
        max_bytes=max_bytes,
        too_large=f"the file is over the limit of {max_bytes} bytes.",
        total=total,
        on_progress=on_progress,
    )
