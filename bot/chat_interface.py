"""The one small interface the core talks to chat through.

The Slack adapter (`bot.slack.web_chat.SlackChat`) implements it over the Web API; the console
adapter implements it over a terminal. The core never imports `slack_bolt` or `slack_sdk`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Awaited after each chunk with (bytes so far, total or None).
ProgressCallback = Callable[[int, int | None], Awaitable[None]]


@dataclass(frozen=True)
class Message:
    """What a message says: plain `text` (notifications, fallbacks) and Block Kit `blocks`.

    Built only in `bot.blocks`. `metadata` travels with the message (Slack message metadata)
    so the bot can reconcile with the thread after a crash.
    """

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class MessageRef:
    """Where a posted message lives; `ts` is its id within the channel."""

    channel: str
    ts: str


@dataclass(frozen=True)
class SharedFile:
    """A file someone shared into a channel, as the core needs to know it."""

    id: str
    name: str
    channel: str
    message_ts: str | None
    user: str | None
    size: int | None = None
    download_url: str | None = None
    # Named by its id only (Slack Connect, or a file Slack is still processing): its name and
    # address come from `Chat.file_info`, and until then `name` is only a stand-in.
    id_only: bool = False

    @property
    def is_jsonl(self) -> bool:
        return self.name.lower().endswith(".jsonl")


class ChatError(Exception):
    """A chat operation failed; `message` is safe to show to a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FileTooLarge(ChatError):
    pass


class PostFenced(Exception):
    """A post not sent: the fence set around it (`post_fence`) said this process may no
    longer post there (its lease is too old; another process may be posting in that thread)."""


# Set around a post made under a lease (the watcher's): a chat that may wait before sending
# (its pacing, a 429's Retry-After) calls `check_post_fence` right before each send, so a
# post that waited past the lease is dropped, not sent after another process posted the same.
post_fence: ContextVar[Callable[[], bool] | None] = ContextVar("post_fence", default=None)


def check_post_fence() -> None:
    """Raises PostFenced when the fence set for this post (if any) no longer lets it go."""
    fence = post_fence.get()
    if fence is not None and not fence():
        raise PostFenced("this process's lease is too old to post; another may hold the watch")


async def save_chunks(
    chunks: AsyncIterator[bytes],
    dest: Path,
    *,
    max_bytes: int,
    too_large: str,
    total: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> int:
    """Writes a file's content to `dest` as it comes and returns its size: `Chat.fetch_file`'s
    cap, for each adapter. FileTooLarge (saying `too_large`) as soon as it passes `max_bytes`."""
    written = 0
    with dest.open("wb") as handle:
        async for chunk in chunks:
            written += len(chunk)
            if written > max_bytes:
                raise FileTooLarge(too_large)
            handle.write(chunk)
            if on_progress is not None:
                await on_progress(written, total)
    return written


class Chat(Protocol):
    async def post(
        self, channel: str, message: Message, *, thread_ts: str | None = None
    ) -> MessageRef: ...

    async def update(self, ref: MessageRef, message: Message) -> None: ...

    async def ephemeral(
        self, channel: str, user: str, message: Message, *, thread_ts: str | None = None
    ) -> None: ...

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
        """Shares a local file into the channel (or thread); returns the chat's file id."""
        ...

    async def open_form(self, trigger_id: str, view: dict[str, Any]) -> None: ...

    async def permalink(self, channel: str, ts: str) -> str | None:
        """A link a person can follow to the message, or None where the chat has none."""
        ...

    async def thread_metadata(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The metadata of the bot's own messages in a thread, oldest first: after a crash the
        watcher reads back which of its posts arrived. Empty where the chat cannot read a
        thread back (the console): then whatever was in flight is posted again."""
        ...

    async def file_info(self, file: SharedFile) -> SharedFile:
        """A file named by id only, made whole (name, size, address); ChatError, with a
        readable message, when the chat will not say (no such file, no access)."""
        ...

    async def fetch_file(
        self,
        file: SharedFile,
        dest: Path,
        *,
        max_bytes: int,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        """Copies a shared file's content to `dest`; returns its size.

        Raises FileTooLarge past `max_bytes` and ChatError (with a readable message) when
        the content cannot be had.
        """
        ...
