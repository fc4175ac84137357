"""`/finetune compare JOB [FILE]` and the Compare button: the prompts of the job's validation
file (or of a file shared in the channel) through the base and the fine-tuned model, scored
by `client.compare`, with the results in the job's thread.

- One run per job at a time in this process: a second request (a double click, say) is told
  where the first one's progress is. A redelivered request (the same trigger id) is taken once
  through the store's request keys, so it starts nothing, whichever process it reaches.
- One progress message, edited in place: at each tenth of the answers, or every few seconds
  when the tenths come slowly, and never more often than PROGRESS_MIN_GAP_S apart (chat.update
  is Tier 3, about 50 a minute). The edits run beside the comparison, so a slow or
  rate-limited edit never holds an answer back. Its Cancel button stops the run; the answers
  so far are scored and posted, marked cancelled.
- The fine-tuned model is `client.compare.find_targets`' choice: the best checkpoint's model
  on the local engine, the job's active deployment on Nebius. Without one the person is told
  in plain words what to do (on Nebius: press Deploy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.blocks.compare import (
    CompareRun,
    compare_busy_message,
    compare_failed_message,
    compare_finished_message,
    compare_gone_message,
    compare_not_ready_message,
    compare_problem_message,
    compare_progress_message,
    compare_result_message,
    compare_thread_message,
)
from bot.chat_interface import Chat, ChatError, Message, MessageRef
from bot.clock import Clock, RealClock
from bot.config import BotSettings
from bot.core.jobs import RequestError, resolve_upload
from bot.core.requests import ButtonClick, CommandRequest, ParsedCommand
from bot.core.uploads import shared_file_of
from bot.store import Store
from client import Job, NebiusClient, NebiusError, clean_filename
from client.compare import (
    CompareDataError,
    CompareExample,
    CompareOptions,
    TargetError,
    find_targets,
    read_examples,
    run_compare,
)
from client.compare.runner import MAX_TOKENS_CAP
from client.sizes import human_size

log = logging.getLogger(__name__)

# A validation file may hold thousands of prompts: the first ones make the point, and each
# costs two completions (paid ones on Nebius). `limit=` takes more, up to MAX_EXAMPLES.
DEFAULT_EXAMPLES = 50
MAX_EXAMPLES = 500
OPTIONS = ("limit", "max_tokens")
# The progress message's edits.
PROGRESS_STEPS = 10  # tenths
PROGRESS_EVERY_S = 5.0
PROGRESS_MIN_GAP_S = 1.5
# How long a stopping bot waits to say that a run was cut short.
STOPPING_EDIT_S = 5.0

# The help's entry (bot.core.commands renders it), and the syntax on one line for hints.
COMPARE_HELP = (
    f"compare JOB [FILE]\n[limit={DEFAULT_EXAMPLES}] [max_tokens=N]",
    "base vs fine-tuned model on the validation prompts",
)
COMPARE_USAGE = COMPARE_HELP[0].replace("\n", " ")


class CompareRequestError(ValueError):
    """A comparison that cannot go ahead; the message says what to fix."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class CompareAsk:
    """What was asked: the job, the file (None: the job's validation file) and the options."""

    job_id: str
    file: str | None = None
    limit: int = DEFAULT_EXAMPLES
    max_tokens: int | None = None


def _whole(name: str, value: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise CompareRequestError(
            f"{name} must be a whole number from {low} to {high} (got {value!r})"
        )
    return int(value)


def parse_compare(args: list[str], options: dict[str, str]) -> CompareAsk:
    """`JOB [FILE] [limit=N] [max_tokens=N]` -> what was asked, or CompareRequestError."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise CompareRequestError(
            f"unknown option {', '.join(unknown)}; the options are: {', '.join(OPTIONS)}",
            f"/finetune {COMPARE_USAGE}",
        )
    if len(args) > 2:
        raise CompareRequestError(
            f"`compare` takes a job id and at most one file, got {len(args)} words "
            f"({' '.join(args[1:])}); put a file name with spaces in quotes",
            f"/finetune {COMPARE_USAGE}",
        )
    limit = DEFAULT_EXAMPLES
    if "limit" in options:
        limit = _whole("limit", options["limit"], 1, MAX_EXAMPLES)
    max_tokens = None
    if "max_tokens" in options:
        max_tokens = _whole("max_tokens", options["max_tokens"], 1, MAX_TOKENS_CAP)
    return CompareAsk(
        job_id=args[0],
        file=args[1] if len(args) > 1 else None,
        limit=limit,
        max_tokens=max_tokens,
    )


class ProgressReporter:
    """Edits the progress message as answers come (see the module's docstring for when)."""

    def __init__(
        self,
        chat: Chat,
        ref: MessageRef,
        render: Callable[[int, int], Message],
        clock: Clock,
    ) -> None:
        self.chat = chat
        self.ref = ref
        self.render = render
        self.clock = clock
        self.shown_at = clock.monotonic()
        self.shown_step = 0
        self.shown_done = 0
        self._task: asyncio.Task[None] | None = None

    def report(self, done: int, total: int) -> None:
        """After each answer (run_compare's on_progress): quick, never waits on the chat."""
        if done >= total or (self._task is not None and not self._task.done()):
            return  # the last one is the finished message; an edit under way is enough
        gap = self.clock.monotonic() - self.shown_at
        tenth = done * PROGRESS_STEPS // total  # integers: 6/20 is three tenths, not 2.999
        if gap < PROGRESS_MIN_GAP_S:
            return
        if tenth > self.shown_step or (gap >= PROGRESS_EVERY_S and done > self.shown_done):
            # Recorded before the edit, so answers arriving during it make no second one.
            self.shown_at, self.shown_step, self.shown_done = self.clock.monotonic(), tenth, done
            self._task = asyncio.create_task(self._edit(self.render(done, total)))

    async def _edit(self, message: Message) -> None:
        try:
            await self.chat.update(self.ref, message)
        except ChatError as error:  # a progress edit is a courtesy: the run goes on
            log.info("compare progress not shown: %s", error.message)

    async def close(self) -> None:
        """Waits for an edit under way, so that it cannot land after the final message."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task


@dataclass
class _Live:
    """A run under way in this process."""

    run_id: str
    channel: str
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled_by: str | None = None
    progress: MessageRef | None = None


@dataclass(frozen=True)
class _Examples:
    examples: list[CompareExample]
    source: str
    more_in_file: bool


class Comparisons:
    """Starts, follows and cancels the comparisons of this process."""

    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        chat: Chat,
        nebius: NebiusClient | None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.chat = chat
        self.nebius = nebius
        self.clock = clock or RealClock()
        self.by_job: dict[str, _Live] = {}
        self.by_run: dict[str, _Live] = {}

    @property
    def api(self) -> NebiusClient:
        assert self.nebius is not None  # the command table's guard refuses without one
        return self.nebius

    # ------------------------------------------------------------------ entry points

    async def command(self, request: CommandRequest, command: ParsedCommand) -> None:
        """`/finetune compare JOB [FILE] [limit=N] [max_tokens=N]`."""
        try:
            ask = parse_compare(command.args, command.options)
        except CompareRequestError as error:
            await self.chat.ephemeral(
                request.channel, request.user, compare_problem_message(error.message, error.hint)
            )
            return
        key = f"compare:{request.trigger_id or uuid.uuid4()}"
        await self.start(ask, key=key, user=request.user, channel=request.channel)

    async def button(self, click: ButtonClick) -> None:
        """The Compare button (its value is the job id), in the thread it was pressed in."""
        thread = click.thread_ts or (None if click.ephemeral else click.message_ts)
        key = f"compare:{click.trigger_id or uuid.uuid4()}"
        await self.start(
            CompareAsk(job_id=click.value),
            key=key,
            user=click.user,
            channel=click.channel,
            thread_ts=thread,
        )

    async def cancel_button(self, click: ButtonClick) -> None:
        """The progress message's Cancel (its value is the run id)."""
        live = self.by_run.get(click.value)
        if live is None:
            await self.chat.ephemeral(
                click.channel, click.user, compare_gone_message(), thread_ts=click.thread_ts
            )
            return
        if not live.cancel.is_set():  # a second click changes nothing
            live.cancelled_by = click.user
            live.cancel.set()

    # ------------------------------------------------------------------ one run

    async def start(
        self,
        ask: CompareAsk,
        *,
        key: str,
        user: str,
        channel: str,
        thread_ts: str | None = None,
    ) -> None:
        """Runs one comparison to its end (call it in the background)."""
        if not await self.store.claim_request(key):
            return  # the same request delivered again: it is running or has run
        running = self.by_job.get(ask.job_id)
        if running is not None:
            link = None
            if running.progress is not None:
                link = await self.chat.permalink(running.progress.channel, running.progress.ts)
            await self._tell(
                channel, user, thread_ts, compare_busy_message(ask.job_id, link, running.channel)
            )
            return
        # Taken with no await since the look above: two requests cannot both get here.
        live = _Live(run_id=uuid.uuid4().hex[:12], channel=channel)
        self.by_job[ask.job_id] = live
        self.by_run[live.run_id] = live
        try:
            await self._run(live, ask, user=user, channel=channel, thread_ts=thread_ts)
        finally:
            self.by_job.pop(ask.job_id, None)
            self.by_run.pop(live.run_id, None)

    async def _tell(self, channel: str, user: str, thread_ts: str | None, message: Message) -> None:
        await self.chat.ephemeral(channel, user, message, thread_ts=thread_ts)

    async def _run(
        self, live: _Live, ask: CompareAsk, *, user: str, channel: str, thread_ts: str | None
    ) -> None:
        job = await self.api.retrieve_job(ask.job_id)
        try:
            targets = await find_targets(self.api, job)
        except TargetError as error:
            await self._tell(channel, user, thread_ts, await self._not_ready(job, error))
            return
        try:
            chosen = await self._examples(job, ask, channel)
            options = CompareOptions(max_tokens=ask.max_tokens)
        except CompareRequestError as error:
            await self._tell(
                channel, user, thread_ts, compare_problem_message(error.message, error.hint)
            )
            return
        thread = thread_ts or await self._thread(job.id, channel, user)
        run = CompareRun(
            run_id=live.run_id,
            job_id=job.id,
            user=user,
            base=targets.base.model,
            tuned=targets.tuned.model,
            how=targets.how,
            source=chosen.source,
            examples=len(chosen.examples),
            more_in_file=chosen.more_in_file,
        )
        total = len(chosen.examples) * len(targets.models)
        progress = await self.chat.post(
            channel, compare_progress_message(run, 0, total), thread_ts=thread
        )
        live.progress = progress
        reporter = ProgressReporter(
            self.chat,
            progress,
            lambda done, all_: compare_progress_message(run, done, all_),
            self.clock,
        )
        try:
            result = await run_compare(
                self.api,
                chosen.examples,
                targets.models,
                options=options,
                on_progress=reporter.report,
                cancel=live.cancel,
                source=chosen.source,
                clock=self.clock.monotonic,
            )
        except asyncio.CancelledError:
            # The bot is stopping: the message must not promise answers that will not come.
            with contextlib.suppress(Exception):
                stopped = compare_failed_message(
                    run, "the bot stopped before it finished.", "Start it again to see the results."
                )
                await asyncio.wait_for(self._edit(progress, stopped), STOPPING_EDIT_S)
            raise
        except NebiusError as error:  # a model that cannot be used at all
            await reporter.close()
            await self._edit(progress, compare_failed_message(run, error.message, error.hint))
            return
        except Exception:
            await reporter.close()
            await self._edit(progress, compare_failed_message(run, "something went wrong."))
            raise
        await reporter.close()
        await self._edit(
            progress, compare_finished_message(run, result, cancelled_by=live.cancelled_by)
        )
        await self.chat.post(channel, compare_result_message(run, result), thread_ts=thread)

    async def _edit(self, ref: MessageRef, message: Message) -> None:
        try:
            await self.chat.update(ref, message)
        except ChatError as error:  # deleted meanwhile, say: the results still follow
            log.info("compare message %s not updated: %s", ref.ts, error.message)

    async def _thread(self, job_id: str, channel: str, user: str) -> str:
        """The job's thread when it is followed in this channel, else a new one."""
        watch = await self.store.watch(job_id)
        if watch is not None and watch.channel == channel:
            return watch.thread_ts
        parent = await self.chat.post(channel, compare_thread_message(job_id, user))
        return parent.ts

    # ------------------------------------------------------------------ the prompts

    async def _examples(self, job: Job, ask: CompareAsk, channel: str) -> _Examples:
        """The first `ask.limit` examples of the file asked for, or of the job's validation
        file; CompareRequestError when there is none or it cannot be read."""
        with tempfile.TemporaryDirectory(prefix="xgenlens-compare-") as folder:
            if ask.file is not None:
                source = await self._fetch_shared(ask.file, channel, Path(folder))
            else:
                source = await self._fetch_validation(job, Path(folder))
            try:
                # One more than asked: to say whether the file had more.
                examples = read_examples(source, limit=ask.limit + 1)
            except CompareDataError as error:
                raise CompareRequestError(str(error)) from None
        return _Examples(
            examples=examples[: ask.limit],
            source=source.name,
            more_in_file=len(examples) > ask.limit,
        )

    async def _fetch_shared(self, ref: str, channel: str, folder: Path) -> Path:
        try:
            upload = await resolve_upload(self.store, channel, ref, "compare")
        except RequestError as error:
            raise CompareRequestError(str(error)) from None
        path = folder / clean_filename(upload.name, fallback="compare.jsonl")
        try:
            await self.chat.fetch_file(
                shared_file_of(upload), path, max_bytes=self.settings.max_upload_bytes
            )
        except ChatError as error:
            raise CompareRequestError(f"`{upload.name}` cannot be read: {error.message}") from None
        return path

    async def _fetch_validation(self, job: Job, folder: Path) -> Path:
        if not job.validation_file:
            raise CompareRequestError(
                f"job `{job.id}` has no validation file to take the prompts from",
                f"Name a chat .jsonl shared in this channel: `/finetune compare {job.id} FILE`.",
            )
        file = await self.api.retrieve_file(job.validation_file)
        limit = self.settings.max_upload_bytes
        if file.bytes is not None and file.bytes > limit:
            raise CompareRequestError(
                f"the validation file `{file.clean_filename}` is {human_size(file.bytes)}, over "
                f"the bot's {human_size(limit)} limit (XGENLENS_MAX_UPLOAD_BYTES)",
                f"Share a smaller chat .jsonl here and name it: `/finetune compare {job.id} FILE`.",
            )
        path = folder / file.clean_filename
        await self.api.download_file(file.id, path)
        return path

    # ------------------------------------------------------------------ no model yet

    async def _not_ready(self, job: Job, error: TargetError) -> Message:
        """find_targets' refusal in plain words, with what to do about it."""
        if not job.is_terminal:
            return compare_not_ready_message(
                job.id,
                f"it is {job.status}, and only a finished job has a fine-tuned model.",
                "Compare it once it has succeeded: its thread says when.",
            )
        if job.status != "succeeded":
            return compare_not_ready_message(
                job.id,
                f"it {job.status}, so there is no fine-tuned model to compare.",
                "Start a new job, and compare that one once it has succeeded.",
            )
        if job.fine_tuned_model or not job.model:
            return compare_not_ready_message(
                job.id, f"{error}.", f"`/finetune checkpoints {job.id}` shows what it has."
            )
        try:
            listed = await self.api.list_deployments()
        except NebiusError:  # the advice below holds either way
            listed = []
        deployments = [
            d for d in listed if d.job_id == job.id or (d.origin or "").split(":", 1)[0] == job.id
        ]
        waiting = [d for d in deployments if not d.is_settled]
        if waiting:
            return compare_not_ready_message(
                job.id,
                f"its deployment `{waiting[0].name}` is still {waiting[0].state}, and a "
                "fine-tuned model answers prompts once its deployment is active.",
                "Press *Compare* again when the deployment says it is active.",
            )
        return compare_not_ready_message(
            job.id,
            "on Nebius a fine-tuned model answers prompts only once it is deployed, and this "
            "job has no active deployment.",
            f"Press *Deploy best checkpoint* on the job's summary (or type `/finetune deploy "
            f"{job.id}`), wait until the deployment is active, then press *Compare* again.",
        )


# ---------------------------------------------------------------------- the table's handlers


class HasComparisons(Protocol):
    """What the command table's rows hand the handlers below (bot.core.commands.CommandRunner)."""

    compares: Comparisons


async def compare_command(
    runner: HasComparisons, request: CommandRequest, command: ParsedCommand
) -> None:
    await runner.compares.command(request, command)


async def compare_button(runner: HasComparisons, click: ButtonClick) -> None:
    await runner.compares.button(click)


async def cancel_compare_button(runner: HasComparisons, click: ButtonClick) -> None:
    await runner.compares.cancel_button(click)
