"""`/finetune ...`, the bot's buttons and its form: check who may, answer (mostly ephemeral).

Each verb and each button is one row of a table at the end of this module (`VERBS`,
`BUTTONS`): its handler, what it needs (a job id, a configured Nebius) and whether it starts
or stops paid work; a verb's row is its line of the help, whose syntax names the verb and
its job id. One guard reads those rows, the help is rendered from `VERBS`, and the Bolt
listeners register the actions of `BUTTONS`; adding a verb or a button is a handler and a
row here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

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


async def _telling_failures(
    work: Awaitable[None], tell: Callable[[Message], Awaitable[None]], kind: str, name: str
) -> None:
    """Runs a command's or a button's `work`; if it fails, the person is told (in Nebius's
    words where Nebius refused) and an unexpected failure's trace goes to the log only."""
    try:
        await work
    except NebiusError as error:
        await tell(error_message("Nebius answered with an error", error.message, error.hint))
    except Exception:
        log.exception("%s failed", name)
        await tell(error_message("Something went wrong", f"the {kind} failed unexpectedly."))


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
        self, rule: Verb | Button, *, user: str, channel: str, args: Sequence[str] = ()
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

    async def tell(self, asked: CommandRequest | ButtonClick, message: Message) -> None:
        """Answers only whoever typed the command or clicked the button, where they did."""
        await self.chat.ephemeral(asked.channel, asked.user, message)

    async def run(self, request: CommandRequest) -> None:
        await _telling_failures(
            self._run(request),
            functools.partial(self.tell, request),
            "command",
            f"/finetune {request.text.split()[:1]}",
        )

    async def _run(self, request: CommandRequest) -> None:
        try:
            command = parse_command(request.text)
        except CommandSyntaxError as error:
            await self.tell(request, usage(str(error)))
            return
        verb = VERBS_BY_NAME.get(command.verb)
        if verb is None:
            await self.tell(request, usage(f"I don't know `{command.verb}`."))
            return
        refusal = self.guard(verb, user=request.user, channel=request.channel, args=command.args)
        if refusal is not None:
            await self.tell(request, refusal)
            return
        await verb.handler(self, request, command)

    async def _help(self, request: CommandRequest, command: ParsedCommand) -> None:
        await self.tell(request, usage())

    async def _list(self, request: CommandRequest, command: ParsedCommand) -> None:
        page = await self.api.list_jobs(limit=20)
        await self.tell(request, jobs_list_message(page.data, has_more=page.has_more))

    async def _status(self, request: CommandRequest, command: ParsedCommand) -> None:
        job = await self.api.retrieve_job(command.args[0])
        await self.tell(request, job_card_message(job, cost=await self.costs.card_text(job)))

    async def _events(self, request: CommandRequest, command: ParsedCommand) -> None:
        job_id = command.args[0]
        events = await self.api.recent_events(job_id, limit=20)
        await self.tell(request, events_message(job_id, events))

    async def _checkpoints(self, request: CommandRequest, command: ParsedCommand) -> None:
        job_id = command.args[0]
        checkpoints = await self.api.list_checkpoints(job_id)
        await self.tell(request, checkpoints_message(job_id, checkpoints))

    async def _cancel(self, request: CommandRequest, command: ParsedCommand) -> None:
        # The job must exist; the button carries Slack's own confirmation dialog.
        job = await self.api.retrieve_job(command.args[0])
        await self.tell(request, cancel_confirm_message(job))

    async def _watch(self, request: CommandRequest, command: ParsedCommand) -> None:
        job_id = command.args[0]
        existing = await self.store.watch(job_id)
        if existing is not None and not existing.done:
            await self.tell(
                request, already_watching_message(job_id, existing.channel, existing.thread_ts)
            )
            return
        job = await self.api.retrieve_job(job_id)
        cost = await self.costs.card_text(job)
        card = await self.chat.post(request.channel, job_card_message(job, cost=cost))
        await self.store.add_watch(job.id, request.channel, card.ts, request.user)
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
            await self.tell(request, usage(f"Cannot download: {error}."))
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
                await self.tell(request, usage("`create` needs model= and training="))
            return
        try:
            plan = await plan_from_options(
                self.store, request.channel, command.options, self.range_profile
            )
        except RequestError as error:
            await self.tell(request, usage(f"Cannot create the job: {error}."))
            return
        # A redelivered command carries the same trigger id: it must not start a second job.
        key = f"command:{request.trigger_id or uuid.uuid4()}"
        if not await self.store.claim_request(key):
            await self.tell(request, already_started_message(await self.store.request_job(key)))
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

    async def click(self, click: ButtonClick) -> None:
        await _telling_failures(
            self._click(click),
            functools.partial(self.tell, click),
            "button",
            f"button {click.action_id}",
        )

    async def _click(self, click: ButtonClick) -> None:
        button = BUTTONS_BY_ACTION.get(click.action_id)
        if button is None:
            log.warning("unknown button %s", click.action_id)
            return
        refusal = self.guard(button, user=click.user, channel=click.channel)
        if refusal is not None:
            await self.tell(click, refusal)
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
            await self.tell(click, usage(f"Cannot download: {error}."))
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
            await self.tell(click, usage(f"Cannot start it again: {error}."))
            return
        if again is not None:
            await self._start(again.plan, key=again.key, user=click.user, channel=again.channel)

    async def _cancel_button(self, click: ButtonClick) -> None:
        job = await self.api.cancel_job(click.value)
        await self.tell(click, cancelled_message(job, click.user))
        await self._update_card(click, job)

    async def _refresh(self, click: ButtonClick) -> None:
        job = await self.api.retrieve_job(click.value)
        if not await self._update_card(click, job):
            cost = await self.costs.card_text(job)
            await self.tell(click, await card_message(self.store, job, cost=cost))

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

    # Starts or stops paid work: the allowlists apply (BotSettings.may_manage_jobs).
    manages_jobs: bool = False
    needs_nebius: bool = True


@dataclass(frozen=True)
class Verb(Rule):
    """A verb, by its line of the help: the syntax's first word is the verb, and a `JOB` in
    the syntax is what makes the guard ask for a job id, so the help cannot say otherwise."""

    syntax: str  # after `/finetune `; it may run on over several lines
    does: str
    handler: Callable[[CommandRunner, CommandRequest, ParsedCommand], Awaitable[None]]
    more_usage: tuple[tuple[str, str], ...] = ()  # further (syntax, does) lines of the help

    @property
    def name(self) -> str:
        return self.syntax.split()[0]

    @property
    def needs_job(self) -> bool:
        return "JOB" in self.syntax.split()

    @property
    def usage(self) -> tuple[tuple[str, str], ...]:
        return ((self.syntax, self.does), *self.more_usage)


@dataclass(frozen=True)
class Button(Rule):
    name: str  # the action id
    handler: Callable[[CommandRunner, ButtonClick], Awaitable[None]]
    needs_job: ClassVar[bool] = False  # a button carries its job in its value


R = CommandRunner
CREATE_INLINE = (
    "create model=M training=FILE [validation=FILE] [epochs=3] [batch_size=8]\n"
    "[learning_rate=1e-5] [lora=true] [suffix=S] [seed=N] ...\n"
    "[wandb_project=P [wandb_name=N] [wandb_entity=E]]  (key: WANDB_API_KEY)"
)
# In the order the help lists them.
VERBS: tuple[Verb, ...] = (
    Verb("help", "this help", R._help, needs_nebius=False),
    Verb(*MODELS_HELP, models_command),
    Verb(
        "create",
        "open the form (or give everything inline:)",
        R._create,
        more_usage=((CREATE_INLINE, ""),),
        manages_jobs=True,
    ),
    Verb("list", "recent jobs", R._list),
    Verb("status JOB", "a job's card", R._status),
    Verb("events JOB", "a job's latest events", R._events),
    Verb("checkpoints JOB", "a job's checkpoints and metrics", R._checkpoints),
    Verb("download JOB [CHECKPOINT]", "a checkpoint's files (default: the best)", R._download),
    Verb("cancel JOB", "cancel a job (asks first)", R._cancel, manages_jobs=True),
    Verb("watch JOB", "follow a job started elsewhere in a new thread", R._watch),
    Verb("chart JOB", "a job's loss chart, in its thread", chart_command),
    # It changes the channel's threads for everyone.
    Verb(
        "notify all|summary|failures",
        "what job threads in this channel receive",
        notify_command,
        manages_jobs=True,
        needs_nebius=False,
    ),
    # Compare and try: two completions a prompt, paid ones on Nebius.
    Verb(*COMPARE_HELP, compare_command, manages_jobs=True),
    Verb(*DEPLOY_HELP, deploy_command, manages_jobs=True),
    Verb(*TRY_HELP, try_command, manages_jobs=True),
    Verb(*UNDEPLOY_HELP, undeploy_command, manages_jobs=True),
)
BUTTONS: tuple[Button, ...] = (
    # Both open the form, which works (asking for a model id) without Nebius.
    Button(Actions.FINETUNE_WITH_FILE, R._use_file, manages_jobs=True, needs_nebius=False),
    Button(Actions.USE_AS_VALIDATION, R._use_file, manages_jobs=True, needs_nebius=False),
    Button(Actions.REFRESH_JOB, R._refresh),
    Button(Actions.CANCEL_JOB, R._cancel_button, manages_jobs=True),
    Button(Actions.DOWNLOAD_CHECKPOINT, R._download_button),
    Button(Actions.START_AGAIN, R._start_again, manages_jobs=True),
    Button(Actions.SHOW_CHART, chart_button),
    Button(Actions.RETRY_JOB, retry_button, manages_jobs=True),
    Button(Actions.EDIT_AND_RETRY, edit_and_retry_button, manages_jobs=True),
    Button(Actions.COMPARE_JOB, compare_button, manages_jobs=True),
    Button(Actions.CANCEL_COMPARE, cancel_compare_button, manages_jobs=True),
    Button(Actions.DEPLOY_CHECKPOINT, deploy_button, manages_jobs=True),
    Button(Actions.TRY_MODEL, try_button, manages_jobs=True),
    Button(Actions.UNDEPLOY_MODEL, undeploy_button, manages_jobs=True),
)
VERBS_BY_NAME = {verb.name: verb for verb in VERBS}
BUTTONS_BY_ACTION = {button.name: button for button in BUTTONS}
HELP = usage_text(
    (line for verb in VERBS for line in verb.usage),
    "FILE is a Slack file id or the name of a recent .jsonl upload in this channel.",
)
