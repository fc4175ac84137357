"""`Chat` over a terminal: the console is one channel, and every message is printed once.

Messages are numbered (`#3`) in the order they appear; a thread reply is indented under a
line naming its parent; an updated message is printed again with its changed lines marked;
buttons become numbered actions that `click N` invokes; files the bot shares are saved to a
folder on disk. The adapter holds no bot logic: the core decides what to say.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from bot.chat_interface import (
    ChatError,
    Message,
    MessageRef,
    ProgressCallback,
    SharedFile,
    save_chunks,
)
from bot.clock import Clock, RealClock
from bot.console.render import render_message
from bot.console.screen import Screen
from client.sizes import human_size

CHANNEL = "console"
USER = "U-console"
BOT_NAME = "xgenlens"
COPY_CHUNK_BYTES = 1024 * 1024
LABEL_CHARS = 48
INDENT = "    "
CHANGED = "* "
SAME = "  "


@dataclass
class Action:
    """What `click N` does: the button and the message it sits on."""

    number: int
    element: dict[str, Any]
    channel: str
    message_ts: str | None
    thread_ts: str | None
    ephemeral: bool

    @property
    def label(self) -> str:
        return str((self.element.get("text") or {}).get("text", ""))

    @property
    def action_id(self) -> str:
        return str(self.element.get("action_id", ""))

    @property
    def value(self) -> str:
        return str(self.element.get("value", ""))


@dataclass
class Posted:
    """A message in the channel as the console showed it."""

    number: int
    ref: MessageRef
    message: Message
    thread_ts: str | None
    lines: list[str]
    # (action_id, value) -> button number: an updated card keeps its numbers.
    buttons: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        first = next((line.strip() for line in self.lines if line.strip()), "")
        return first if len(first) <= LABEL_CHARS else first[: LABEL_CHARS - 1] + "…"


@dataclass(frozen=True)
class Form:
    trigger_id: str
    view: dict[str, Any]


class ConsoleChat:
    """The chat the core talks to in console mode; see the module docstring."""

    def __init__(
        self,
        screen: Screen,
        downloads_dir: Path,
        *,
        user: str = USER,
        user_name: str = "you",
        files_index: Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.screen = screen
        self.downloads_dir = downloads_dir
        self.user = user
        self.user_name = user_name
        self.messages: dict[str, Posted] = {}
        self.actions: dict[int, Action] = {}
        self.forms: asyncio.Queue[Form] = asyncio.Queue()
        # Local files shared with `upload PATH`, by their console file id.
        self.local_files: dict[str, Path] = {}
        # Job ids in the order their cards first appeared, and each job's last card status.
        self.jobs: list[str] = []
        self.saved_files: list[Path] = []
        self._next_message = 0
        self._next_action = 0
        self._next_file = 0
        # Ids must not repeat across sessions: the bot's database outlives this process and
        # would take a reused file id for a file it has already checked.
        self.session = int((clock or RealClock()).time() * 1000)
        self.files_index = files_index
        if files_index is not None:
            self.local_files.update(_read_index(files_index))

    # ------------------------------------------------------------------ helpers

    def users(self, user_id: str) -> str:
        return "@" + (self.user_name if user_id == self.user else user_id)

    def _new_ts(self) -> tuple[int, str]:
        self._next_message += 1
        # Shaped like Slack's ts (seconds.sequence), so it sorts and parses the same way.
        return self._next_message, f"{self.session}.{self._next_message:06d}"

    def new_file_id(self) -> str:
        self._next_file += 1
        return f"F{self.session:X}{self._next_file:03d}"

    def share_local_file(self, file_id: str, path: Path) -> None:
        """Remembers where a shared file lives, across sessions when there is an index."""
        self.local_files[file_id] = path
        if self.files_index is not None:
            _write_index(self.files_index, self.local_files)

    def _numberer(
        self, channel: str, message_ts: str | None, thread_ts: str | None, posted: Posted | None
    ):
        ephemeral = posted is None

        def number(element: dict[str, Any]) -> int:
            key = (str(element.get("action_id", "")), str(element.get("value", "")))
            if posted is not None and key in posted.buttons:
                return posted.buttons[key]
            self._next_action += 1
            n = self._next_action
            self.actions[n] = Action(n, element, channel, message_ts, thread_ts, ephemeral)
            if posted is not None:
                posted.buttons[key] = n
            return n

        return number

    def _render(self, message: Message, number) -> list[str]:
        return render_message(message.text, message.blocks, number, self.users)

    def _note_job(self, message: Message) -> None:
        job_id = (message.metadata or {}).get("job_id")
        if job_id and job_id not in self.jobs:
            self.jobs.append(str(job_id))

    @property
    def last_job(self) -> str | None:
        return self.jobs[-1] if self.jobs else None

    def _show(self, header: str, lines: list[str], *, indent: str = "") -> None:
        body = [indent + INDENT + line if line else "" for line in lines]
        self.screen.show([indent + header, *body])

    def show_user_message(self, text: str) -> MessageRef:
        """What the person did (an upload) becomes a message, so replies can thread under it."""
        number, ts = self._new_ts()
        ref = MessageRef(CHANNEL, ts)
        lines = text.split("\n")
        self.messages[ts] = Posted(number, ref, Message(text=text), None, lines)
        self._show(f"#{number} @{self.user_name}:", lines)
        return ref

    def notice(self, *lines: str) -> None:
        """Console-only text (help, problems with what was typed): not a chat message."""
        self.screen.show(list(lines))

    # ------------------------------------------------------------------ Chat

    async def post(
        self, channel: str, message: Message, *, thread_ts: str | None = None
    ) -> MessageRef:
        number, ts = self._new_ts()
        ref = MessageRef(channel, ts)
        posted = Posted(number, ref, message, thread_ts, [])
        self.messages[ts] = posted
        posted.lines = self._render(message, self._numberer(channel, ts, thread_ts, posted))
        self._note_job(message)
        parent = self.messages.get(thread_ts) if thread_ts else None
        if thread_ts:
            about = f"#{parent.number} {parent.label}" if parent else f"message {thread_ts}"
            self._show(
                f"  ↳ #{number} {BOT_NAME}, in the thread of {about}:", posted.lines, indent="  "
            )
        else:
            self._show(f"#{number} {BOT_NAME}:", posted.lines)
        return ref

    async def update(self, ref: MessageRef, message: Message) -> None:
        posted = self.messages.get(ref.ts)
        if posted is None:
            # A card from an earlier session (the watcher resumes its jobs): show it afresh.
            self._next_message += 1
            posted = Posted(self._next_message, ref, message, None, [])
            self.messages[ref.ts] = posted
            posted.lines = self._render(message, self._numberer(ref.channel, ref.ts, None, posted))
            self._note_job(message)
            self._show(
                f"#{posted.number} {BOT_NAME} updated a message of an earlier session:",
                posted.lines,
            )
            return
        before = posted.lines
        posted.message = message
        number = self._numberer(ref.channel, ref.ts, posted.thread_ts, posted)
        posted.lines = self._render(message, number)
        self._note_job(message)
        changed = [line not in before for line in posted.lines]
        count = sum(changed)
        if not count and len(before) == len(posted.lines):
            return  # the same card again: each message is shown once, and again only on change
        what = f"{count} {'line' if count == 1 else 'lines'} changed, marked *"
        if not count:
            what = "some lines removed"
        lines = [
            (CHANGED if c else SAME) + line for line, c in zip(posted.lines, changed, strict=True)
        ]
        indent = "  " if posted.thread_ts else ""
        self._show(f"#{posted.number} {BOT_NAME} updated ({what}):", lines, indent=indent)

    async def ephemeral(
        self, channel: str, user: str, message: Message, *, thread_ts: str | None = None
    ) -> None:
        lines = self._render(message, self._numberer(channel, None, thread_ts, None))
        self._note_job(message)
        self._show(f"{BOT_NAME} (only {self.users(user)} sees this):", lines)

    async def permalink(self, channel: str, ts: str) -> str | None:
        return None  # the console shows threads inline; there is nothing to link to

    async def thread_metadata(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        return []  # an earlier session's screen is gone: the watcher posts again

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
        """Saves the file under the downloads folder and says where, in the thread."""
        file_id = self.new_file_id()
        # A job's files go to a folder named after it, so two jobs' adapters never mix.
        parent = self.messages.get(thread_ts) if thread_ts else None
        job_id = ((parent.message.metadata or {}).get("job_id") if parent else None) or ""
        folder = self.downloads_dir / _safe_folder(str(job_id)) if job_id else self.downloads_dir
        folder.mkdir(parents=True, exist_ok=True)
        target = _free_name(folder, Path(filename).name or file_id)
        try:
            await asyncio.to_thread(shutil.copyfile, path, target)
        except OSError as error:
            raise ChatError(
                f"could not save {filename} to {target.parent}: {error.strerror}"
            ) from None
        self.saved_files.append(target)
        size = target.stat().st_size
        lines = [f"📎 {title or filename} ({human_size(size)}) saved to {target}"]
        if comment:
            lines.insert(0, comment)
        text = "\n".join(lines)
        await self.post(channel, Message(text=text), thread_ts=thread_ts)
        return file_id

    async def open_form(self, trigger_id: str, view: dict[str, Any]) -> None:
        # The input loop asks the questions: it owns the keyboard (or the script).
        await self.forms.put(Form(trigger_id, view))
        title = str((view.get("title") or {}).get("text", "A form"))
        self.screen.show([f"📝 {title} opened: its questions come next (press Enter if waiting)."])

    async def file_info(self, file: SharedFile) -> SharedFile:
        return file  # a file shared here is always known whole

    async def fetch_file(
        self,
        file: SharedFile,
        dest: Path,
        *,
        max_bytes: int,
        on_progress: ProgressCallback | None = None,
    ) -> int:
        source = self.local_files.get(file.id)
        if source is None:
            raise ChatError(f"the console has no file {file.id}.")
        try:
            with source.open("rb") as reader:
                return await save_chunks(
                    _chunks(reader),
                    dest,
                    max_bytes=max_bytes,
                    too_large=f"{source.name} is larger than {max_bytes:,} bytes.",
                    total=file.size,
                    on_progress=on_progress,
                )
        except FileNotFoundError:
            raise ChatError(f"{source} is no longer there.") from None
        except PermissionError:
            raise ChatError(f"{source} cannot be read (permission denied).") from None


async def _chunks(reader: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(reader.read, COPY_CHUNK_BYTES):
        yield chunk


def _safe_folder(name: str) -> str:
    """A job id as a folder name: nothing that could climb out of the downloads folder."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "job"


def _free_name(folder: Path, name: str) -> Path:
    """`name`, or `name (2)` and so on: a download never overwrites an earlier one."""
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 2
    while target.exists():
        target = folder / f"{stem} ({n}){suffix}"
        n += 1
    return target


def _read_index(path: Path) -> dict[str, Path]:
    """The files shared in earlier sessions; an unreadable index only forgets them."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): Path(v) for k, v in data.items() if isinstance(v, str)}


def _write_index(path: Path, files: dict[str, Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({k: str(v) for k, v in files.items()}, indent=1))
    temporary.replace(path)
