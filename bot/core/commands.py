"""`/finetune ...`, the bot's buttons and its form: check who may, answer (mostly ephemeral).

Each verb and each button is one row of a table at the end of this module (`VERBS`,
`BUTTONS`): its handler, what it needs (a job id, a configured Nebius) and whether it starts
or stops paid work. One guard reads those rows, the help is rendered from `VERBS`, and the
Bolt listeners register the actions of `BUTTONS`; adding a verb is a handler and a row here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.blocks import error_message, refusal_message, usage_message
from bot.blocks.cost import form_cost_text
from bot.blocks.forms import create_job_view, form_options
from bot.blocks.ids import Actions, Views
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
    watching_message,
)
from bot.blocks.notices import usage_text
from bot.chat_interface import Chat, Message, MessageRef
from bot.clock import Clock
from bot.config import BotSettings
from bot.core.charts import Charts, chart_button, chart_command
from bot.core.compare import (
    COMPARE_HELP,
    Comparisons,
    cancel_compare_button,
    compare_button,
    compare_command,
)
from bot.core.costs import Costs
from bot.core.custom_models import (
    DEPLOY_HELP,
    MODELS_HELP,
    TRY_HELP,
    UNDEPLOY_HELP,
    CustomModels,
    deploy_button,
    deploy_command,
    models_command,
    try_button,
    try_command,
    undeploy_button,
    undeploy_command,
)
from bot.core.downloads import DownloadError, pick_checkpoint, upload_checkpoint
from bot.core.jobs import CreatePlan, JobStarter, RequestError, plan_from_form, plan_from_options
from bot.core.notify import notify_command
from bot.core.requests import (
    ButtonClick,
    CommandRequest,
    CommandSyntaxError,
    FormSubmission,
    ParsedCommand,
    parse_command,
)
from bot.core.retry import edit_and_retry_button, retry_button
from bot.core.retry_links import card_message
from bot.core.uploads import UploadHandler
from bot.store import Store
from client import Job, NebiusClient, NebiusError
from client.hyperparameters import NEBIUS, RangeProfile

if TYPE_CHECKING:
    from bot.core.watcher import Watcher

log = logging.getLogger(__name__)

FORM_MODELS_WAIT_S = 2.0


def nebius_missing_message() -> Message:
    return error_message(
        "Nebius is not configured",
        "this bot has no NEBIUS_API_KEY.",
        "Set NEBIUS_API_KEY (and NEBIUS_BASE_URL for another server) and restart.",
    )


def usage(problem: str | None = None) -> Message:
    """The help (rendered from `VERBS`), after what was wrong with the command if anything."""
    return usage_message(HELP, problem)


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
        clock: Clock | None = None,
    ) -> None:
        self.uploads = uploads
        self.compares = Comparisons(settings, store, chat, nebius, clock=clock)
        self.custom_models = CustomModels(settings, store, chat, nebius)
        self.costs = Costs(store, nebius)
        self.settings = settings
        self.store = store
        self.chat = chat
        self.nebius = nebius
        self.watcher = watcher
        self.charts = Charts(chat)
        # One for the bot's life: it knows which requests are being started now, so an
        # identical one is refused however long Nebius takes with the first.
        self.starter = (
            JobStarter(
                settings,
                store,
                chat,
                nebius,
                on_watch=watcher.wake if watcher is not None else None,
            )
            if nebius is not None
            else None
        )

    @property
    def range_profile(self) -> RangeProfile:
        """The ranges that `create` and the form check: those of the server in use."""
        return self.nebius.range_profile if self.nebius is not None else NEBIUS

    @property
    def api(self) -> NebiusClient:
        """Nebius, for the handlers the guard let through (it refuses them without one)."""
        assert self.nebius is not None
        return self.nebius

    def guard(
        self, rule: Rule, *, user: str, channel: str, args: Sequence[str] = ()
    ) -> Message | None:
        """Why `rule`'s verb or button may not run now, or None: permission first, then a
        configured Nebius, then the job id."""
        if rule.manages_jobs:
            reason = self.settings.may_manage_jobs(user, channel)
            if reason:
                return refusal_message(reason)
        if rule.needs_nebius and self.nebius is None:
            return nebius_missing_message()
        if rule.needs_job and not args:
            return usage(f"`{rule.name}` needs a job id.")
        return None

    # ------------------------------------------------------------------ commands

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
            await self._answer(request, usage(str(error)))
            return
        verb = VERBS_BY_NAME.get(command.verb)
        if verb is None:
            await self._answer(request, usage(f"I don't know `{command.verb}`."))
            return
        refusal = self.guard(verb, user=request.user, channel=request.channel, args=command.args)
        if refusal is not None:
            await self._answer(request, refusal)
            return
        await verb.handler(self, request, command)

    async def _help(self, request: CommandRequest, command: ParsedCommand) -> None:
        await self._answer(request, usage())

    async def _list(self, request: CommandRequest, command: ParsedCommand) -> None:
        page = await self.api.list_jobs(limit=20)
        await self._answer(request, jobs_list_message(page.data, has_more=page.has_more))

    async def _status(self, request: CommandRequest, command: ParsedCommand) -> None:
        job = await self.api.retrieve_job(command.args[0])
        await self._answer(request, job_card_message(job, cost=await self.costs.card_text(job)))

    async def _events(self, request: CommandRequest, command: ParsedCommand) -> None:
        job_id = command.args[0]
        events = await self.api.recent_events(job_id, limit=20)
        await self._answer(request, events_message(job_id, events))

    async def _checkpoints(self, request: CommandRequest, command: ParsedCommand) -> None:
        job_id = command.args[0]
        checkpoints = await self.api.list_checkpoints(job_id)
        await self._answer(request, checkpoints_message(job_id, checkpoints))

    async def _cancel(self, request: CommandRequest, command: ParsedCommand) -> None:
        # The job must exist; the button carries Slack's own confirmation dialog.
        job = await self.api.retrieve_job(command.args[0])
        await self._answer(request, cancel_confirm_message(job))

    async def _watch(self, request: CommandRequest, command: ParsedCommand) -> None:
        job_id = command.args[0]
        existing = await self.store.watch(job_id)
        if existing is not None and not existing.done:
            await self._answer(
                request, already_watching_message(job_id, existing.channel, existing.thread_ts)
            )
            return
        job = await self.api.retrieve_job(job_id)
        cost = await self.costs.card_text(job)
        card = await self.chat.post(request.channel, job_card_message(job, cost=cost))
        await self.store.add_watch(job.id, request.channel, card.ts, card.ts, request.user)
        await self.chat.post(
            request.channel, watching_message(job, request.user), thread_ts=card.ts
        )
        if self.watcher is not None:
            self.watcher.wake()

    async def _download(self, request: CommandRequest, command: ParsedCommand) -> None:
        job_id = command.args[0]
        wanted = command.args[1] if len(command.args) > 1 else None
        try:
            checkpoint = pick_checkpoint(await self.api.list_checkpoints(job_id), wanted)
        except DownloadError as error:
            await self._answer(request, usage(f"Cannot download: {error}."))
            return
        watch = await self.store.watch(job_id)
        if watch is not None and watch.channel == request.channel:
            where = MessageRef(watch.channel, watch.thread_ts)
        else:
            where = await self.chat.post(
                request.channel, checkpoint_files_message(job_id, checkpoint, request.user)
            )
        await upload_checkpoint(self.chat, self.api, job_id, checkpoint, where)

    async def _create(self, request: CommandRequest, command: ParsedCommand) -> None:
        if not command.options:
            if request.trigger_id:
                await self.open_create_form(request.channel, request.trigger_id)
            else:
                await self._answer(request, usage("`create` needs model= and training="))
            return
        try:
            plan = await plan_from_options(
                self.store, request.channel, command.options, self.range_profile
            )
        except RequestError as error:
            await self._answer(request, usage(f"Cannot create the job: {error}."))
            return
        # A redelivered command carries the same trigger id: it must not start a second job.
        key = f"command:{request.trigger_id or uuid.uuid4()}"
        if not await self.store.claim_request(key):
            await self._answer(request, already_started_message(await self.store.request_job(key)))
            return
        await self._start(plan, key=key, user=request.user, channel=request.channel)

    # ------------------------------------------------------------------ starting jobs

    async def _start(self, plan: CreatePlan, *, key: str, user: str, channel: str) -> None:
        assert self.starter is not None
        await self.starter.start(plan, key=key, user=user, channel=channel)
        if plan.validation is not None:
            # After the start, so the job never waits on it; done once per file whatever
            # became of the job.
            await self._mark_validation(plan.validation.slack_file_id)

    async def _mark_validation(self, slack_file_id: str, message: MessageRef | None = None) -> None:
        """The file's own report now says it is checked as a validation file."""
        if self.uploads is not None:
            await self.uploads.check_as_validation(slack_file_id, message=message)

    async def resolve_interrupted_starts(self) -> None:
        """At start: the job starts an earlier process left unfinished (JobStarter)."""
        if self.starter is not None:
            await self.starter.resolve_interrupted()

    # ------------------------------------------------------------------ the form

    async def open_create_form(
        self,
        channel: str,
        trigger_id: str,
        *,
        training: str | None = None,
        validation: str | None = None,
        prefill: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """Opens the modal; Slack's trigger expires in 3 s, so the model list may not wait.
        `prefill` fills the view in (Edit and retry, bot.core.retry)."""
        models = []
        if self.nebius is not None:
            try:
                models = await asyncio.wait_for(self.nebius.list_models(), FORM_MODELS_WAIT_S)
            except (NebiusError, TimeoutError):
                log.warning("model list unavailable; the form asks for a model id instead")
        cost_note = None
        if training is not None:  # opened from a file's button: what that file would cost
            upload = await self.store.upload(training)
            cost_note = form_cost_text(self.costs.free, self.costs.form_estimates(upload))
        view = create_job_view(
            channel=channel,
            models=models,
            uploads=await self.store.recent_uploads(channel),
            training=training,
            validation=validation,
            wandb_configured=self.settings.wandb_api_key is not None,
            profile=self.range_profile,
            cost_note=cost_note,
        )
        if prefill is not None:
            view = prefill(view)
        await self.chat.open_form(trigger_id, view)

    async def submitted_form(
        self, form: FormSubmission
    ) -> tuple[dict[str, str], Coroutine[Any, Any, None] | None]:
        """Errors by block id (the form stays open), or none and the start to run in the
        background. Quick and without I/O: the errors travel in Slack's acknowledgement."""
        if form.callback_id == Views.TRY_MODEL:
            return await self.custom_models.try_submitted(form)
        if form.callback_id != Views.CREATE_JOB:
            return {}, None
        try:
            metadata = json.loads(form.private_metadata or "{}")
        except ValueError:
            metadata = {}
        channel = str(metadata.get("channel", ""))
        retry_of = metadata.get("retry_of")  # a form opened by Edit and retry
        reason = self.settings.may_manage_jobs(form.user, channel)
        if reason:
            return {"model": f"Sorry, {reason}."}, None
        plan, errors = await plan_from_form(
            self.store,
            channel,
            form_options(form.values),
            wandb_configured=self.settings.wandb_api_key is not None,
            profile=self.range_profile,
        )
        if plan is None:
            return errors, None
        if retry_of:
            plan = dataclasses.replace(plan, retry_of=str(retry_of))
        key = f"form:{form.view_id or form.trigger_id or uuid.uuid4()}"
        return {}, self._start_from_form(plan, key=key, user=form.user, channel=channel)

    async def _start_from_form(
        self, plan: CreatePlan, *, key: str, user: str, channel: str
    ) -> None:
        if not await self.store.claim_request(key):
            return  # the same submission, delivered again
        if self.nebius is None:
            await self.store.release_request(key)
            await self.chat.ephemeral(channel, user, nebius_missing_message())
            return
        await self._start(plan, key=key, user=user, channel=channel)

    # ------------------------------------------------------------------ buttons

    async def _tell(self, click: ButtonClick, message: Message) -> None:
        await self.chat.ephemeral(click.channel, click.user, message)

    async def click(self, click: ButtonClick) -> None:
        try:
            await self._click(click)
        except NebiusError as error:
            await self._tell(
                click, error_message("Nebius answered with an error", error.message, error.hint)
            )
        except Exception:
            log.exception("button %s failed", click.action_id)
            await self._tell(
                click, error_message("Something went wrong", "the button failed unexpectedly.")
            )

    async def _click(self, click: ButtonClick) -> None:
        button = BUTTONS_BY_ACTION.get(click.action_id)
        if button is None:
            log.warning("unknown button %s", click.action_id)
            return
        refusal = self.guard(button, user=click.user, channel=click.channel)
        if refusal is not None:
            await self._tell(click, refusal)
            return
        await button.handler(self, click)

    async def _use_file(self, click: ButtonClick) -> None:
        """The "Fine-tune with this file" and "Use as validation file" buttons of a report."""
        validation = click.action_id == Actions.USE_AS_VALIDATION
        if click.trigger_id:
            role = "validation" if validation else "training"
            # The form first: Slack's trigger expires in 3 s.
            await self.open_create_form(click.channel, click.trigger_id, **{role: click.value})
        if validation:
            report = None
            if click.message_ts and not click.ephemeral:
                report = MessageRef(click.channel, click.message_ts)
            await self._mark_validation(click.value, report)

    async def _download_button(self, click: ButtonClick) -> None:
        job_id, _, checkpoint_id = click.value.partition(":")
        checkpoints = await self.api.list_checkpoints(job_id)
        try:
            checkpoint = pick_checkpoint(checkpoints, checkpoint_id or None)
        except DownloadError as error:
            await self._tell(click, usage(f"Cannot download: {error}."))
            return
        where = MessageRef(click.channel, click.thread_ts or click.message_ts or "")
        await upload_checkpoint(self.chat, self.api, job_id, checkpoint, where)

    async def _start_again(self, click: ButtonClick) -> None:
        # A start a restart interrupted (see JobStarter.resolve_interrupted); taken once.
        assert self.starter is not None
        try:
            again = await self.starter.take_again(
                click.value, user=click.user, channel=click.channel
            )
        except RequestError as error:
            await self._tell(click, usage(f"Cannot start it again: {error}."))
            return
        if again is not None:
            await self._start(again.plan, key=again.key, user=click.user, channel=again.channel)

    async def _cancel_button(self, click: ButtonClick) -> None:
        job = await self.api.cancel_job(click.value)
        await self._tell(click, cancelled_message(job, click.user))
        await self._update_card(click, job)

    async def _refresh(self, click: ButtonClick) -> None:
        job = await self.api.retrieve_job(click.value)
        if not await self._update_card(click, job):
            cost = await self.costs.card_text(job)
            await self._tell(click, await card_message(self.store, job, cost=cost))

    async def _update_card(self, click: ButtonClick, job: Job) -> bool:
        """The card the click came from shows the latest state; False where it cannot be
        updated (an ephemeral message)."""
        if not click.message_ts or click.ephemeral:
            return False
        card = await card_message(self.store, job, cost=await self.costs.card_text(job))
        await self.chat.update(MessageRef(click.channel, click.message_ts), card)
        return True


# ---------------------------------------------------------------------- the tables


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What the guard checks before a verb's or a button's handler runs."""

    name: str
    # Starts or stops paid work: the allowlists apply (BotSettings.may_manage_jobs).
    manages_jobs: bool = False
    needs_nebius: bool = True
    needs_job: bool = False  # the first argument is a job id


@dataclass(frozen=True, kw_only=True)
class Verb(Rule):
    handler: Callable[[CommandRunner, CommandRequest, ParsedCommand], Awaitable[None]]
    # (syntax after `/finetune `, what it does) lines of the help; a syntax may run on over
    # several lines.
    usage: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Button(Rule):
    handler: Callable[[CommandRunner, ButtonClick], Awaitable[None]]


R = CommandRunner
# In the order the help lists them.
VERBS: tuple[Verb, ...] = (
    Verb(name="help", handler=R._help, needs_nebius=False, usage=(("help", "this help"),)),
    Verb(name="models", handler=models_command, usage=(MODELS_HELP,)),
    Verb(
        name="create",
        handler=R._create,
        manages_jobs=True,
        usage=(
            ("create", "open the form (or give everything inline:)"),
            (
                "create model=M training=FILE [validation=FILE] [epochs=3] [batch_size=8]\n"
                "[learning_rate=1e-5] [lora=true] [suffix=S] [seed=N] ...\n"
                "[wandb_project=P [wandb_name=N] [wandb_entity=E]]  (key: WANDB_API_KEY)",
                "",
            ),
        ),
    ),
    Verb(name="list", handler=R._list, usage=(("list", "recent jobs"),)),
    Verb(name="status", handler=R._status, needs_job=True, usage=(("status JOB", "a job's card"),)),
    Verb(
        name="events",
        handler=R._events,
        needs_job=True,
        usage=(("events JOB", "a job's latest events"),),
    ),
    Verb(
        name="checkpoints",
        handler=R._checkpoints,
        needs_job=True,
        usage=(("checkpoints JOB", "a job's checkpoints and metrics"),),
    ),
    Verb(
        name="download",
        handler=R._download,
        needs_job=True,
        usage=(("download JOB [CHECKPOINT]", "a checkpoint's files (default: the best)"),),
    ),
    Verb(
        name="cancel",
        handler=R._cancel,
        needs_job=True,
        manages_jobs=True,
        usage=(("cancel JOB", "cancel a job (asks first)"),),
    ),
    Verb(
        name="watch",
        handler=R._watch,
        needs_job=True,
        usage=(("watch JOB", "follow a job started elsewhere in a new thread"),),
    ),
    Verb(
        name="chart",
        handler=chart_command,
        needs_job=True,
        usage=(("chart JOB", "a job's loss chart, in its thread"),),
    ),
    Verb(
        name="notify",
        handler=notify_command,
        manages_jobs=True,  # it changes the channel's threads for everyone
        needs_nebius=False,
        usage=(("notify all|summary|failures", "what job threads in this channel receive"),),
    ),
    Verb(
        name="compare",
        handler=compare_command,
        needs_job=True,
        manages_jobs=True,  # two completions a prompt: paid ones on Nebius
        usage=(COMPARE_HELP,),
    ),
    Verb(
        name="deploy",
        handler=deploy_command,
        needs_job=True,
        manages_jobs=True,
        usage=(DEPLOY_HELP,),
    ),
    # Two completions a prompt: paid ones on Nebius.
    Verb(name="try", handler=try_command, manages_jobs=True, usage=(TRY_HELP,)),
    Verb(name="undeploy", handler=undeploy_command, manages_jobs=True, usage=(UNDEPLOY_HELP,)),
)
BUTTONS: tuple[Button, ...] = (
    # Both open the form, which works (asking for a model id) without Nebius.
    Button(
        name=Actions.FINETUNE_WITH_FILE, handler=R._use_file, manages_jobs=True, needs_nebius=False
    ),
    Button(
        name=Actions.USE_AS_VALIDATION, handler=R._use_file, manages_jobs=True, needs_nebius=False
    ),
    Button(name=Actions.REFRESH_JOB, handler=R._refresh),
    Button(name=Actions.CANCEL_JOB, handler=R._cancel_button, manages_jobs=True),
    Button(name=Actions.DOWNLOAD_CHECKPOINT, handler=R._download_button),
    Button(name=Actions.START_AGAIN, handler=R._start_again, manages_jobs=True),
    Button(name=Actions.SHOW_CHART, handler=chart_button),
    Button(name=Actions.RETRY_JOB, handler=retry_button, manages_jobs=True),
    Button(name=Actions.EDIT_AND_RETRY, handler=edit_and_retry_button, manages_jobs=True),
    Button(name=Actions.COMPARE_JOB, handler=compare_button, manages_jobs=True),
    Button(name=Actions.CANCEL_COMPARE, handler=cancel_compare_button, manages_jobs=True),
    Button(name=Actions.DEPLOY_CHECKPOINT, handler=deploy_button, manages_jobs=True),
    Button(name=Actions.TRY_MODEL, handler=try_button, manages_jobs=True),
    Button(name=Actions.UNDEPLOY_MODEL, handler=undeploy_button, manages_jobs=True),
)
VERBS_BY_NAME = {verb.name: verb for verb in VERBS}
BUTTONS_BY_ACTION = {button.name: button for button in BUTTONS}
HELP = usage_text(
    (line for verb in VERBS for line in verb.usage),
    "FILE is a Slack file id or the name of a recent .jsonl upload in this channel.",
)
