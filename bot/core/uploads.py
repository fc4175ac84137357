"""A JSONL file shared in a channel: fetch it, validate it, answer in its thread."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from pathlib import Path

from bot.blocks import download_progress_message, upload_problem_message, upload_report
from bot.blocks.notices import file_unreadable_message
from bot.chat_interface import Chat, ChatError, FileTooLarge, Message, MessageRef, SharedFile
from bot.clock import Clock, RealClock
from bot.config import BotSettings
from bot.store import Store, Upload
from client.sizes import human_size
from client.validation import (
    DatasetUnreadable,
    ValidationReport,
    as_validation_file,
    validate_file,
)

log = logging.getLogger(__name__)

# Files at least this large get a progress message, updated at most every few seconds.
PROGRESS_THRESHOLD_BYTES = 5 * 1024 * 1024
PROGRESS_EVERY_S = 3.0


def shared_file_of(upload: Upload) -> SharedFile:
    """The Slack file a recorded upload came from, to fetch it again."""
    return SharedFile(
        id=upload.slack_file_id,
        name=upload.name,
        channel=upload.channel,
        message_ts=upload.thread_ts,
        user=upload.user_id,
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class UploadHandler:
    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        chat: Chat,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.chat = chat
        self.clock = clock or RealClock()
        self.progress_threshold = PROGRESS_THRESHOLD_BYTES

    async def handle(self, file: SharedFile) -> None:
        """Validates a shared .jsonl once per Slack file; other files are left alone."""
        if file.id_only:
            completed = await self._complete(file)
            if completed is None:
                return
            file = completed
        if not file.is_jsonl:
            return
        if not await self.store.claim_upload(
            file.id, file.channel, file.message_ts, file.name, file.user
        ):
            log.info("file %s already handled", file.id)
            return
        thread = MessageRef(file.channel, file.message_ts) if file.message_ts else None
        try:
            await self._check(file, thread)
        except Exception:
            # Never leave a file silently unanswered; details go to the log only.
            log.exception("checking %s failed", file.id)
            await self.store.finish_upload(
                file.id, sha256=None, valid=None, fmt=None, report=None, state="failed"
            )
            await self._say(
                file, thread, upload_problem_message(file.name, "an unexpected error occurred.")
            )

    async def _complete(self, file: SharedFile) -> SharedFile | None:
        """A file the event named by id only: the rest from the chat, or None (said why in
        the file's thread: whether it is a dataset cannot even be told)."""
        try:
            return await self.chat.file_info(file)
        except ChatError as error:
            log.info("file %s cannot be looked up: %s", file.id, error.message)
            thread = MessageRef(file.channel, file.message_ts) if file.message_ts else None
            await self._say(file, thread, file_unreadable_message(file.id, error.message))
            return None

    async def _say(
        self, file: SharedFile, thread: MessageRef | None, message: Message
    ) -> MessageRef:
        return await self.chat.post(file.channel, message, thread_ts=thread.ts if thread else None)

    async def _check(self, file: SharedFile, thread: MessageRef | None) -> None:
        cap = self.settings.max_upload_bytes
        if file.size is not None and file.size > cap:
            await self.store.finish_upload(
                file.id, sha256=None, valid=None, fmt=None, report=None, state="failed"
            )
            await self._say(file, thread, _too_large(file, file.size, cap))
            return
        progress = _Progress(self, file, thread)
        with tempfile.TemporaryDirectory(prefix="xgenlens-upload-") as tmp:
            path = Path(tmp) / "upload.jsonl"
            try:
                if file.size is not None and file.size >= self.progress_threshold:
                    await progress.show(0, file.size, "downloading")
                size = await self.chat.fetch_file(
                    file, path, max_bytes=cap, on_progress=progress.downloaded
                )
            except FileTooLarge:
                await self.store.finish_upload(
                    file.id, sha256=None, valid=None, fmt=None, report=None, state="failed"
                )
                await progress.finish(_too_large(file, None, cap))
                return
            except ChatError as error:
                await self.store.finish_upload(
                    file.id, sha256=None, valid=None, fmt=None, report=None, state="failed"
                )
                await progress.finish(upload_problem_message(file.name, error.message))
                return
            sha = await asyncio.to_thread(sha256_of, path)
            earlier = await self.store.validated_upload_by_sha(sha)
            if earlier is not None and earlier.report is not None:
                # Same content as before: the report cannot differ, so it is not redone.
                report = dict(earlier.report, filename=file.name, file=file.name)
                await self.store.finish_upload(
                    file.id, sha256=sha, valid=earlier.valid, fmt=earlier.format, report=report
                )
                shown = await progress.finish(upload_report(file.id, report, reused=True))
                await self.store.upload_reported(file.id, shown.ts)
                return
            if progress.message is not None:
                await progress.show(size, size, "validating")
            try:
                result = await asyncio.to_thread(
                    validate_file, path, context_length=self.settings.context_length
                )
            except DatasetUnreadable as error:
                await self.store.finish_upload(
                    file.id, sha256=sha, valid=None, fmt=None, report=None, state="failed"
                )
                await progress.finish(upload_problem_message(file.name, str(error)))
                return
        report = result.to_dict()
        # The validator saw a temporary path; people know the file by its Slack name.
        report["file"] = report["filename"] = file.name
        await self.store.finish_upload(
            file.id, sha256=sha, valid=result.valid, fmt=result.format, report=report
        )
        shown = await progress.finish(upload_report(file.id, report))
        await self.store.upload_reported(file.id, shown.ts)

    async def check_as_validation(
        self, slack_file_id: str, *, message: MessageRef | None = None
    ) -> None:
        """Someone uses this upload as a validation file: its report, as one.

        The upload was checked as a training file, which warns "no validation file" (and
        about a small example count) where neither applies; the validation report is the
        same report without them. The report message (the one recorded, else `message`)
        is updated in place.
        """
        upload = await self.store.upload(slack_file_id)
        if upload is None or not upload.valid or upload.report is None:
            return  # unknown, or not usable as any kind of file
        if upload.validation_report is not None:
            return  # already shown as a validation file
        report = as_validation_file(ValidationReport.model_validate(upload.report)).to_dict()
        await self.store.finish_validation_report(upload.slack_file_id, report)
        shown = upload_report(upload.slack_file_id, report)
        if upload.report_ts is not None:
            message = MessageRef(upload.channel, upload.report_ts)
        if message is not None:
            try:
                await self.chat.update(message, shown)
                return
            except ChatError as error:  # deleted since, say: say it afresh in the thread
                log.info("report of %s not updated (%s)", upload.slack_file_id, error)
        await self.chat.post(upload.channel, shown, thread_ts=upload.thread_ts)


def _too_large(file: SharedFile, size: int | None, cap: int) -> Message:
    what = f"it is {human_size(size)}" if size else "it is larger than the limit"
    return upload_problem_message(
        file.name,
        f"{what}; this bot checks files up to {human_size(cap)}.",
        "Split the dataset, or check it locally with `validate-jsonl FILE` and start the job "
        "with `finetune create`. The limit is set by XGENLENS_MAX_UPLOAD_BYTES.",
    )


class _Progress:
    """The one progress message of a large file: created once, then updated, never flooded."""

    def __init__(self, handler: UploadHandler, file: SharedFile, thread: MessageRef | None):
        self.handler = handler
        self.file = file
        self.thread = thread
        self.message: MessageRef | None = None
        self.last_shown = 0.0
        self.pending: tuple[int, int | None] | None = None

    async def show(self, done: int, total: int | None, stage: str) -> None:
        msg = download_progress_message(self.file.name, done, total, stage)
        if self.message is None:
            self.message = await self.handler._say(self.file, self.thread, msg)
        else:
            await self.handler.chat.update(self.message, msg)
        self.last_shown = self.handler.clock.monotonic()
        self.pending = None

    async def downloaded(self, done: int, total: int | None) -> None:
        """Called after each chunk; updates the message at most every PROGRESS_EVERY_S."""
        if self.message is None:
            return
        self.pending = (done, total)
        if self.handler.clock.monotonic() - self.last_shown >= PROGRESS_EVERY_S:
            await self.show(done, total, "downloading")

    async def finish(self, message: Message) -> MessageRef:
        """Shows the last word on the file; returns the message that holds it."""
        if self.message is None:
            return await self.handler._say(self.file, self.thread, message)
        await self.handler.chat.update(self.message, message)
        return self.message
