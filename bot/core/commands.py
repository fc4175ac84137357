"""`/finetune ...`: parse the words, check who may, answer (mostly ephemeral)."""

from __future__ import annotations

import asyncio
import logging
import shlex
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.blocks import error_message, refusal_message, usage_message
from bot.blocks.forms import create_job_view
from bot.blocks.ids import Actions
from bot.blocks.jobs import (
    already_started_message,
    already_watching_message,
    cancel_confirm_message,
    cancelled_message,
    checkpoint_files_message,
    checkpoints_message,
    events_message,
    job_card_message,
    jobs_list_message,
    models_message,
    watching_message,
)
from bot.chat import Chat, Message, MessageRef
from bot.config import BotSettings
from bot.core.downloads import DownloadError, pick_checkpoint, upload_checkpoint
from bot.core.jobs import CreatePlan, JobStarter, RequestError, plan_from_options
from bot.core.uploads import UploadHandler
from bot.store import Store
from client import NebiusClient, NebiusError
from client.hyperparameters import NEBIUS, RangeProfile

if TYPE_CHECKING:
    from bot.core.bot import ButtonClick, CommandRequest
    from bot.core.watcher import Watcher

log = logging.getLogger(__name__)

FORM_MODELS_WAIT_S = 2.0
ALL_VERBS = {
    "help",
    "models",
    "list",
    "status",
    "events",
    "checkpoints",
    "cancel",
    "create",
    "download",
    "watch",
}
NEEDS_JOB = {"status", "events", "checkpoints", "download", "cancel", "watch"}
# Verbs that start or stop paid work: the allowlists apply.
MANAGE_VERBS = {"create", "cancel"}


@dataclass(frozen=True)
class ParsedCommand:
    verb: str
    args: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)


class CommandSyntaxError(ValueError):
    pass


def parse_command(text: str) -> ParsedCommand:
    """`create model=m training="my file.jsonl" epochs=2` -> verb, args, options."""
    try:
        words = shlex.split(text.strip())
    except ValueError as error:
        raise CommandSyntaxError(f"could not read the command: {error}") from None
    if not words:
        return ParsedCommand("help")
    verb, rest = words[0].lower(), words[1:]
    args, options = [], {}
    for word in rest:
        key, sep, value = word.partition("=")
        if sep:
            if not key:
                raise CommandSyntaxError(f"`{word}` has no name before `=`")
            options[key.strip().lower()] = value
        else:
            args.append(word)
    return ParsedCommand(verb, args, options)


def nebius_missing_message() -> Message:
    return error_message(
        "Nebius is not configured",
        "this bot has no NEBIUS_API_KEY.",
        "Set NEBIUS_API_KEY (and NEBIUS_BASE_URL for another server) and restart.",
    )


class CommandRunner:
    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        chat: Chat,
        nebius: NebiusClient | None,
        *,
        watcher: Watcher | None = None,
        uploads: UploadHandler | None = None,
    ) -> None:
        self.uploads = uploads
        self.settings = settings
        self.store = store
        self.chat = chat
        self.nebius = nebius
        self.watcher = watcher
        # Content fingerprints of the requests being started now (see JobStarter.start).
        self.starting: set[str] = set()

    @property
    def range_profile(self) -> RangeProfile:
        """The ranges that `create` and the form check: those of the server in use."""
        return self.nebius.range_profile if self.nebius is not None else NEBIUS

    def _starter(self) -> JobStarter:
        assert self.nebius is not None
        on_watch = self.watcher.wake if self.watcher is not None else None
        return JobStarter(
            self.settings,
            self.store,
            self.chat,
            self.nebius,
            on_watch=on_watch,
            starting=self.starting,
        )

    async def _answer(self, request: CommandRequest, message: Message) -> None:
        await self.chat.ephemeral(request.channel, request.user, message)

    async def run(self, request: CommandRequest) -> None:
        try:
            await self._run(request)
        except NebiusError as error:
            await self._answer(
                request, error_message("Nebius answered with an error", error.message, error.hint)
            )
        except Exception:
            log.exception("/finetune %s failed", request.text.split()[:1])
            await self._answer(
                request,
                error_message("Something went wrong", "the command failed unexpectedly."),
            )

    async def _run(self, request: CommandRequest) -> None:
        try:
            command = parse_command(request.text)
        except CommandSyntaxError as error:
            await self._answer(request, usage_message(str(error)))
            return
        verb = command.verb
        if verb not in ALL_VERBS:
            await self._answer(request, usage_message(f"I don't know `{verb}`."))
            return
        if verb == "help":
            await self._answer(request, usage_message())
            return
        if verb in MANAGE_VERBS:
            reason = self.settings.may_manage_jobs(request.user, request.channel)
            if reason:
                await self._answer(request, refusal_message(reason))
                return
        if verb in NEEDS_JOB and not command.args:
            await self._answer(request, usage_message(f"`{verb}` needs a job id."))
            return
        if self.nebius is None:
            await self._answer(request, nebius_missing_message())
            return
        if verb == "create":
            await self._create(request, command)
            return
        if verb == "watch":
            await self._watch(request, command.args[0])
            return
        if verb == "download":
            await self._download_command(request, command)
            return
        await self._answer(request, await self._read(verb, command))

    async def _watch(self, request: CommandRequest, job_id: str) -> None:
        assert self.nebius is not None
        existing = self.store.watch(job_id)
        if existing is not None and not existing.done:
            await self._answer(
                request, already_watching_message(job_id, existing.channel, existing.thread_ts)
            )
            return
        job = await self.nebius.retrieve_job(job_id)
        card = await self.chat.post(request.channel, job_card_message(job))
        self.store.add_watch(job.id, request.channel, card.ts, card.ts, request.user)
        await self.chat.post(
            request.channel, watching_message(job, request.user), thread_ts=card.ts
        )
        if self.watcher is not None:
            self.watcher.wake()

    async def _download_command(self, request: CommandRequest, command: ParsedCommand) -> None:
        assert self.nebius is not None
        job_id = command.args[0]
        wanted = command.args[1] if len(command.args) > 1 else None
        try:
            checkpoint = pick_checkpoint(await self.nebius.list_checkpoints(job_id), wanted)
        except DownloadError as error:
            await self._answer(request, usage_message(f"Cannot download: {error}."))
            return
        watch = self.store.watch(job_id)
        if watch is not None and watch.channel == request.channel:
            where = MessageRef(watch.channel, watch.thread_ts)
        else:
            where = await self.chat.post(
                request.channel, checkpoint_files_message(job_id, checkpoint, request.user)
            )
        await upload_checkpoint(self.chat, self.nebius, job_id, checkpoint, where)

    async def _create(self, request: CommandRequest, command: ParsedCommand) -> None:
        assert self.nebius is not None
        if not command.options:
            if request.trigger_id:
                await self.open_create_form(request.channel, request.trigger_id)
            else:
                await self._answer(request, usage_message("`create` needs model= and training="))
            return
        try:
            plan = plan_from_options(
                self.store, request.channel, command.options, self.range_profile
            )
        except RequestError as error:
            await self._answer(request, usage_message(f"Cannot create the job: {error}."))
            return
        # A redelivered command carries the same trigger id: it must not start a second job.
        key = f"command:{request.trigger_id or uuid.uuid4()}"
        if not self.store.claim_request(key):
            await self._answer(request, already_started_message(self.store.request_job(key)))
            return
        await self._start(plan, key=key, user=request.user, channel=request.channel)

    async def _start(self, plan: CreatePlan, *, key: str, user: str, channel: str) -> None:
        await self._starter().start(plan, key=key, user=user, channel=channel)
        if plan.validation is not None:
            # After the start, so the job never waits on it; done once per file whatever
            # became of the job.
            await self._mark_validation(plan.validation.slack_file_id)

    async def _mark_validation(self, slack_file_id: str, message: MessageRef | None = None) -> None:
        """The file's own report now says it is checked as a validation file."""
        if self.uploads is not None:
            await self.uploads.check_as_validation(slack_file_id, message=message)

    async def open_create_form(
        self,
        channel: str,
        trigger_id: str,
        *,
        training: str | None = None,
        validation: str | None = None,
    ) -> None:
        """Opens the modal; Slack's trigger expires in 3 s, so the model list may not wait."""
        models = []
        if self.nebius is not None:
            try:
                models = await asyncio.wait_for(self.nebius.list_models(), FORM_MODELS_WAIT_S)
            except (NebiusError, TimeoutError):
                log.warning("model list unavailable; the form asks for a model id instead")
        view = create_job_view(
            channel=channel,
            models=models,
            uploads=self.store.recent_uploads(channel),
            training=training,
            validation=validation,
            wandb_configured=self.settings.wandb_api_key is not None,
            profile=self.range_profile,
        )
        await self.chat.open_form(trigger_id, view)

    async def resolve_interrupted_starts(self) -> None:
        """At start: the job starts an earlier process left unfinished (JobStarter)."""
        if self.nebius is not None:
            await self._starter().resolve_interrupted()

    async def start_from_form(self, plan: CreatePlan, *, key: str, user: str, channel: str) -> None:
        if not self.store.claim_request(key):
            return  # the same submission, delivered again
        if self.nebius is None:
            self.store.release_request(key)
            await self.chat.ephemeral(channel, user, nebius_missing_message())
            return
        await self._start(plan, key=key, user=user, channel=channel)

    async def _read(self, verb: str, command: ParsedCommand) -> Message:
        assert self.nebius is not None
        if verb == "models":
            return models_message(await self.nebius.list_models())
        if verb == "list":
            page = await self.nebius.list_jobs(limit=20)
            return jobs_list_message(page.data, has_more=page.has_more)
        job_id = command.args[0]
        if verb == "cancel":
            # The job must exist; the button carries Slack's own confirmation dialog.
            return cancel_confirm_message(await self.nebius.retrieve_job(job_id))
        if verb == "status":
            return job_card_message(await self.nebius.retrieve_job(job_id))
        if verb == "events":
            return events_message(job_id, await self.nebius.recent_events(job_id, limit=20))
        return checkpoints_message(job_id, await self.nebius.list_checkpoints(job_id))

    async def click(self, click: ButtonClick) -> None:
        try:
            await self._click(click)
        except NebiusError as error:
            await self.chat.ephemeral(
                click.channel,
                click.user,
                error_message("Nebius answered with an error", error.message, error.hint),
            )
        except Exception:
            log.exception("button %s failed", click.action_id)
            await self.chat.ephemeral(
                click.channel,
                click.user,
                error_message("Something went wrong", "the button failed unexpectedly."),
            )

    async def _click(self, click: ButtonClick) -> None:
        action = click.action_id
        if action in (Actions.FINETUNE_WITH_FILE, Actions.USE_AS_VALIDATION):
            reason = self.settings.may_manage_jobs(click.user, click.channel)
            if reason:
                await self.chat.ephemeral(click.channel, click.user, refusal_message(reason))
                return
            if click.trigger_id:
                role = "training" if action == Actions.FINETUNE_WITH_FILE else "validation"
                # The form first: Slack's trigger expires in 3 s.
                await self.open_create_form(click.channel, click.trigger_id, **{role: click.value})
            if action == Actions.USE_AS_VALIDATION:
                report = None
                if click.message_ts and not click.ephemeral:
                    report = MessageRef(click.channel, click.message_ts)
                await self._mark_validation(click.value, report)
            return
        if action == Actions.DOWNLOAD_CHECKPOINT:
            if self.nebius is None:
                await self.chat.ephemeral(click.channel, click.user, nebius_missing_message())
                return
            job_id, _, checkpoint_id = click.value.partition(":")
            checkpoints = await self.nebius.list_checkpoints(job_id)
            try:
                checkpoint = pick_checkpoint(checkpoints, checkpoint_id or None)
            except DownloadError as error:
                await self.chat.ephemeral(
                    click.channel, click.user, usage_message(f"Cannot download: {error}.")
                )
                return
            where = MessageRef(click.channel, click.thread_ts or click.message_ts or "")
            await upload_checkpoint(self.chat, self.nebius, job_id, checkpoint, where)
            return
        if action in (Actions.CANCEL_JOB, Actions.START_AGAIN):
            reason = self.settings.may_manage_jobs(click.user, click.channel)
            if reason:
                await self.chat.ephemeral(click.channel, click.user, refusal_message(reason))
                return
        if self.nebius is None:
            await self.chat.ephemeral(click.channel, click.user, nebius_missing_message())
            return
        if action == Actions.START_AGAIN:
            # A start a restart interrupted (see JobStarter.resolve_interrupted); taken once.
            again = await self._starter().take_again(
                click.value, user=click.user, channel=click.channel
            )
            if again is not None:
                await self._start(again.plan, key=again.key, user=click.user, channel=again.channel)
            return
        if action == Actions.CANCEL_JOB:
            job = await self.nebius.cancel_job(click.value)
            await self.chat.ephemeral(click.channel, click.user, cancelled_message(job, click.user))
        elif action == Actions.REFRESH_JOB:
            job = await self.nebius.retrieve_job(click.value)
        else:
            log.warning("unknown button %s", action)
            return
        if click.message_ts and not click.ephemeral:
            # The card the click came from shows the latest state.
            card = MessageRef(click.channel, click.message_ts)
            await self.chat.update(card, job_card_message(job))
        elif action == Actions.REFRESH_JOB:
            await self.chat.ephemeral(click.channel, click.user, job_card_message(job))
