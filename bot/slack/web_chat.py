"""`Chat` over Slack's Web API: pacing, 429 handling, uploads and downloads.

Slack allows about one message per second per channel; posts to one channel queue behind
each other here instead of collecting 429s. A 429 that still comes is waited out
(`Retry-After`) and the call repeated.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat_interface import (
    ChatError,
    Message,
    MessageRef,
    ProgressCallback,
    SharedFile,
    check_post_fence,
)
from bot.clock import Clock, RealClock
from bot.config import SLACK_FILE_HOSTS
from bot.slack.download import download_slack_file
from bot.slack.files import completed_file
from client.errors import redact_text

log = logging.getLogger(__name__)

POST_INTERVAL_S = 1.0
MAX_RATE_LIMIT_RETRIES = 5
UPLOAD_CHUNK_BYTES = 1024 * 1024


class SlackChat:
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        bot_token: str,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
        extra_file_hosts: frozenset[str] = frozenset(),
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.client = client
        self._token = bot_token
        self.clock = clock or RealClock()
        self.http = http or httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
        self.file_hosts = frozenset(SLACK_FILE_HOSTS) | extra_file_hosts
        self.secrets = (bot_token, *secrets)
        self._channel_locks: dict[str, asyncio.Lock] = {}
        self._last_post: dict[str, float] = {}
        self.rate_limited = 0  # 429s waited out so far (the tests read it)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """One Web API call; 429s are waited out, other failures become a ChatError."""
        for _ in range(MAX_RATE_LIMIT_RETRIES + 1):
            # After any wait (pacing, Retry-After): a post under a lease that has grown too
            # old meanwhile is dropped here rather than sent (bot.chat_interface.post_fence).
            check_post_fence()
            try:
                # The typed methods encode each argument the way Slack expects it.
                call = getattr(self.client, method.replace(".", "_"))
                response = await call(**kwargs)
                return dict(response.data) if isinstance(response.data, dict) else {}
            except SlackApiError as error:
                if error.response.status_code == 429:
                    self.rate_limited += 1
                    await self.clock.sleep(_retry_after(error.response.headers))
                    continue
                code = error.response.get("error", "unknown_error")
                log.warning("Slack %s failed: %s", method, code)
                detail = redact_text(str(code), self.secrets)
                raise ChatError(f"Slack refused {method}: {detail}") from None
        raise ChatError(f"Slack kept rate-limiting {method}; try again in a minute.")

    async def post(
        self, channel: str, message: Message, *, thread_ts: str | None = None
    ) -> MessageRef:
        lock = self._channel_locks.setdefault(channel, asyncio.Lock())
        async with lock:
            wait = self._last_post.get(channel, -1e9) + POST_INTERVAL_S - self.clock.monotonic()
            if wait > 0:
                await self.clock.sleep(wait)
            data = await self._call("chat.postMessage", **_payload(channel, message, thread_ts))
            self._last_post[channel] = self.clock.monotonic()
        return MessageRef(channel=data.get("channel", channel), ts=str(data["ts"]))

    async def update(self, ref: MessageRef, message: Message) -> None:
        payload = _payload(ref.channel, message, None)
        await self._call("chat.update", ts=ref.ts, **payload)

    async def ephemeral(
        self, channel: str, user: str, message: Message, *, thread_ts: str | None = None
    ) -> None:
        payload = _payload(channel, message, thread_ts)
        payload.pop("metadata", None)
        await self._call("chat.postEphemeral", user=user, **payload)

    async def open_form(self, trigger_id: str, view: dict[str, Any]) -> None:
        await self._call("views.open", trigger_id=trigger_id, view=view)

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        """The person's App Home tab (views.publish, Tier 4: about 100 a minute)."""
        await self._call("views.publish", user_id=user, view=view)

    async def permalink(self, channel: str, ts: str) -> str | None:
        try:
            data = await self._call("chat.getPermalink", channel=channel, message_ts=ts)
        except ChatError:  # a link is a convenience: the answer goes out without it
            return None
        link = data.get("permalink")
        return link if isinstance(link, str) and link.startswith("https://") else None

    async def upload_file(
        self,
        channel: str,
        path: Path,
        *,
        filename: str,
        title: str | None = None,
        thread_ts: str | None = None,
        comment: str | None = None,
    ) -> str:
        """Slack's external upload: get a URL, stream the bytes there, complete into the thread."""
        size = path.stat().st_size
        target = await self._call("files.getUploadURLExternal", filename=filename, length=size)
        upload_url, file_id = target["upload_url"], target["file_id"]

        async def chunks():
            with path.open("rb") as handle:
                while chunk := handle.read(UPLOAD_CHUNK_BYTES):
                    yield chunk

        try:
            response = await self.http.post(
                upload_url, content=chunks(), headers={"Content-Length": str(size)}
            )
        except httpx.HTTPError as error:
            raise ChatError(
                f"could not upload the file to Slack ({type(error).__name__})."
            ) from None
        if response.status_code != 200:
            raise ChatError(f"Slack refused the file upload (HTTP {response.status_code}).")
        complete: dict[str, Any] = {
            "files": [{"id": file_id, "title": title or filename}],
            "channel_id": channel,
        }
        if thread_ts:
            complete["thread_ts"] = thread_ts
        if comment:
            complete["initial_comment"] = comment
        await self._call("files.completeUploadExternal", **complete)
        return str(file_id)

    async def thread_metadata(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The bot's message metadata in a thread, oldest first (for reconciling after a crash)."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            args: dict[str, Any] = {
                "channel": channel,
                "ts": thread_ts,
                "include_all_metadata": True,
                "limit": 200,
            }
            if cursor:
                args["cursor"] = cursor
            data = await self._call("conversations.replies", **args)
            for message in data.get("messages") or []:
                metadata = message.get("metadata") or {}
                if metadata.get("event_type") == "xgenlens":
                    found.append(metadata.get("event_payload") or {})
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor or not data.get("has_more"):
                return found

    async def file_info(self, file: SharedFile) -> SharedFile:
        # The bot may read files of the channels it is in (files:read).
        data = await self._call("files.info", file=file.id)
        return completed_file(file, data.get("file") or {})

    async def fetch_file(
        self,
        file: SharedFile,
        dest: Path,
        *,
        max_bytes: int,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        url = file.download_url
        if not url:
            # Message events may carry only the id ("file_access": "check_file_info").
            info = await self._call("files.info", file=file.id)
            url = (info.get("file") or {}).get("url_private_download")
        if not url:
            raise ChatError(
                "Slack gave no download address for the file (it may still be processing it); "
                "share it again in a minute."
            )
        return await download_slack_file(
            self.http,
            url,
            dest,
            bot_token=self._token,
            allowed_hosts=self.file_hosts,
            max_bytes=max_bytes,
            on_progress=on_progress,
        )


def _payload(channel: str, message: Message, thread_ts: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"channel": channel, "text": message.text}
    if message.blocks:
        payload["blocks"] = message.blocks
    if thread_ts:
        payload["thread_ts"] = thread_ts
    if message.metadata:
        payload["metadata"] = {"event_type": "xgenlens", "event_payload": message.metadata}
    return payload


def _retry_after(headers: Any) -> float:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == "retry-after":
            text = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(text))
            except (TypeError, ValueError):
                break
    return 1.0


def api_host(api_url: str) -> str:
    return (urlsplit(api_url).hostname or "").lower()
