"""From a request to a Nebius job: resolve the files, upload each content once, wait until
Nebius has processed it, create the job once per request, and leave a card in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.blocks.cost import start_cost_text
from bot.blocks.forms import WANDB_MAX_CHARS
from bot.blocks.jobs import (
    duplicate_request_message,
    job_card_message,
    job_start_failed_message,
    job_starting_message,
    job_step_message,
)
from bot.blocks.notices import (
    start_again_gone_message,
    start_found_step_message,
    start_interrupted_message,
    start_interrupted_step_message,
    start_unresolved_message,
    started_again_message,
)
from bot.chat_interface import Chat, ChatError, Message, MessageRef
from bot.config import BotSettings
from bot.core.costs import Costs
from bot.core.retry_links import card_message, link_retry
from bot.core.uploads import sha256_of, shared_file_of
from bot.store import PendingStart, Store, Upload
from client import (
    FileObject,
    HyperparameterError,
    Hyperparameters,
    Job,
    JobRequest,
    NebiusClient,
    NebiusError,
    WandbIntegration,
    WandbSettings,
)
from client.hyperparameters import (
    NEBIUS,
    SUFFIX_MAX_CHARS,
    RangeProfile,
    describe_rule,
    suffix_error,
)

log = logging.getLogger(__name__)

# Short names people type for the contract's hyperparameters.
ALIASES = {"epochs": "n_epochs", "lr": "learning_rate"}
# W&B names are typed in Slack; the key only ever comes from the bot's configuration.
WANDB_OPTIONS = {"wandb_project": "project", "wandb_name": "name", "wandb_entity": "entity"}
FILE_OPTIONS = {"model", "training", "validation", "suffix", "seed", *WANDB_OPTIONS}
HYPERPARAMETERS = set(Hyperparameters.model_fields)
# A request identical in content to one claimed or created this recently is refused: two
# clicks (or a command typed twice) would otherwise pay for two identical jobs.
DUPLICATE_WINDOW_S = 10 * 60
# How long an uploaded file may take Nebius to process before the start gives up.
FILE_WAIT_S = 600.0


class RequestError(ValueError):
    """A create request that cannot go ahead; the message says what to fix."""


class WandbNotConfigured(Exception):
    """W&B logging was asked for, but the bot has no W&B key."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class CreatePlan:
    """Everything a job needs, checked, before anything is uploaded."""

    model: str
    training: Upload
    validation: Upload | None
    hyperparameters: Hyperparameters
    suffix: str | None = None
    seed: int | None = None
    # project, name, entity for a W&B integration; None: no W&B logging.
    wandb: dict[str, str] | None = None
    # The failed or cancelled job this one retries (bot.core.retry); linked both ways.
    retry_of: str | None = None


def request_fingerprint(plan: CreatePlan, *, user: str, channel: str) -> str:
    """What makes two requests the same job: who, where, model, data, and every setting.

    Files count by content (sha256) so the same data shared twice is still the same;
    hyperparameters count with their defaults filled in, so `epochs=3` equals no epochs.
    """

    def file(upload: Upload | None) -> str | None:
        return None if upload is None else (upload.sha256 or upload.slack_file_id)

    content = {
        "user": user,
        "channel": channel,
        "model": plan.model,
        "training": file(plan.training),
        "validation": file(plan.validation),
        "hyperparameters": plan.hyperparameters.model_dump(mode="json"),
        "suffix": plan.suffix,
        "seed": plan.seed,
        "wandb": plan.wandb,
    }
    if plan.retry_of:  # a retry is not a duplicate of the job it retries
        content["retry_of"] = plan.retry_of
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def plan_record(plan: CreatePlan) -> dict[str, Any]:
    """A plan as the store keeps it for a restart: files by Slack file id (and name, to be
    named in messages), settings, W&B names. Never a secret: the W&B key is read from the
    bot's configuration each time a job is created."""
    return {
        "model": plan.model,
        "training": plan.training.slack_file_id,
        "training_name": plan.training.name,
        "validation": plan.validation.slack_file_id if plan.validation else None,
        "validation_name": plan.validation.name if plan.validation else None,
        "hyperparameters": plan.hyperparameters.model_dump(mode="json"),
        "suffix": plan.suffix,
        "seed": plan.seed,
        "wandb": plan.wandb,
        "retry_of": plan.retry_of,
    }


async def plan_from_record(store: Store, channel: str, record: dict[str, Any]) -> CreatePlan:
    """A stored plan made whole again, its files checked as for a new request (RequestError
    when one is gone or no longer valid). Its settings were checked when it was made."""
    try:
        hyperparameters = Hyperparameters.restore(record["hyperparameters"])
    except (KeyError, ValueError):
        raise RequestError("the stored request cannot be read; type it again") from None
    training, validation = await resolve_files(
        store, channel, record["training"], record.get("validation")
    )
    return CreatePlan(
        model=record["model"],
        training=training,
        validation=validation,
        hyperparameters=hyperparameters,
        suffix=record.get("suffix"),
        seed=record.get("seed"),
        wandb=record.get("wandb"),
        retry_of=record.get("retry_of"),
    )


def plan_summary(record: dict[str, Any]) -> str:
    """`model` on `file` (validation `file`), from a stored plan."""
    files = f"`{record.get('training_name') or record.get('training')}`"
    if record.get("validation"):
        files += f" (validation `{record.get('validation_name') or record['validation']}`)"
    return f"`{record.get('model')}` on {files}"


def request_record(request: JobRequest) -> dict[str, Any]:
    """The job body as the store keeps it: as sent, less the W&B key."""
    body = request.model_dump(mode="json", exclude_none=True)
    for integration in body.get("integrations") or []:
        (integration.get("wandb") or {}).pop("api_key", None)
    return body


@dataclass(frozen=True)
class StartAgain:
    """An interrupted request, taken to be started again under a new request key."""

    plan: CreatePlan
    key: str
    channel: str


def seed_problem(seed: str | None, profile: RangeProfile) -> str | None:
    """What is wrong with a typed seed, by the client's range for it; None when it is fine."""
    if seed is None or (seed.isdigit() and profile.check("seed", int(seed)) is None):
        return None
    rule = describe_rule(profile.ranges["seed"])
    return f"seed must be a whole number {rule} {profile.where} (got {seed!r})"


def suffix_problem(suffix: str | None, profile: RangeProfile) -> str | None:
    """What is wrong with a suffix (the client's limit); None when it is fine."""
    if suffix is None or len(suffix) <= SUFFIX_MAX_CHARS:
        return None
    return suffix_error(len(suffix), profile)


async def plan_from_options(
    store: Store, channel: str, options: dict[str, str], profile: RangeProfile = NEBIUS
) -> CreatePlan:
    """`model=... training=... epochs=2 ...` -> a checked plan (`profile`'s ranges), or
    RequestError."""
    unknown = sorted(
        k for k in options if k not in FILE_OPTIONS and ALIASES.get(k, k) not in HYPERPARAMETERS
    )
    if unknown:
        allowed = ", ".join(sorted(FILE_OPTIONS | HYPERPARAMETERS | set(ALIASES)))
        raise RequestError(f"unknown option {', '.join(unknown)}; the options are: {allowed}")
    missing = [k for k in ("model", "training") if not options.get(k)]
    if missing:
        raise RequestError(f"`create` needs {' and '.join(f'{k}=' for k in missing)}")
    values = {ALIASES.get(k, k): v for k, v in options.items() if k not in FILE_OPTIONS}
    try:
        hyperparameters = Hyperparameters.build(profile, **values)
    except HyperparameterError as error:
        raise RequestError(error.message) from None
    seed, suffix = options.get("seed"), options.get("suffix")
    problem = seed_problem(seed, profile) or suffix_problem(suffix, profile)
    if problem:
        raise RequestError(problem)
    wandb = {field: options[k] for k, field in WANDB_OPTIONS.items() if options.get(k)}
    if wandb and "project" not in wandb:
        raise RequestError(
            "W&B logging needs wandb_project= (wandb_name= and wandb_entity= are optional)"
        )
    training, validation = await resolve_files(
        store, channel, options["training"], options.get("validation")
    )
    return CreatePlan(
        model=options["model"],
        training=training,
        validation=validation,
        hyperparameters=hyperparameters,
        suffix=suffix,
        seed=int(seed) if seed is not None else None,
        wandb=wandb or None,
    )


async def plan_from_form(
    store: Store,
    channel: str,
    options: dict[str, str],
    *,
    wandb_configured: bool,
    profile: RangeProfile = NEBIUS,
) -> tuple[CreatePlan | None, dict[str, str]]:
    """The modal's answers -> a plan, or errors keyed by the form's block ids.

    `wandb_configured`: the bot has a W&B key; without one a W&B project is an error on
    its field, said while the form is still open rather than in the job's thread later.
    """
    errors: dict[str, str] = _wandb_errors(options, wandb_configured)
    if not options.get("model"):
        errors["model"] = "Pick a model."
    for name in HYPERPARAMETERS & options.keys():
        try:
            Hyperparameters.build(profile, **{name: options[name]})
        except HyperparameterError as error:
            errors[name] = error.message
    for name, problem in (
        ("seed", seed_problem(options.get("seed"), profile)),
        ("suffix", suffix_problem(options.get("suffix"), profile)),
    ):
        if problem:
            errors[name] = problem
    if not options.get("training"):
        errors["validation"] = "There is no training file: share a .jsonl in the channel first."
    for role in ("training", "validation"):
        if options.get(role) and role not in errors:
            try:
                await resolve_upload(store, channel, options[role], role)
            except RequestError as error:
                errors[role] = str(error)[:150]
    if errors:
        return None, errors
    return await plan_from_options(store, channel, options, profile), {}


def _wandb_errors(options: dict[str, str], configured: bool) -> dict[str, str]:
    too_long = {
        k: f"At most {WANDB_MAX_CHARS} characters."
        for k in WANDB_OPTIONS
        if len(options.get(k, "")) > WANDB_MAX_CHARS
    }
    if too_long:
        return too_long
    if not options.get("wandb_project"):
        # The error goes where the stray value is, so clearing it there is enough.
        return {
            k: "Only with a W&B project: fill that in, or leave this empty."
            for k in ("wandb_name", "wandb_entity")
            if options.get(k)
        }
    if not configured:
        return {
            "wandb_project": "W&B logging needs WANDB_API_KEY in the bot's configuration "
            "(keys are never typed into Slack); ask whoever runs the bot, or leave this empty."
        }
    return {}


async def resolve_files(
    store: Store, channel: str, training: str, validation: str | None
) -> tuple[Upload, Upload | None]:
    """A job's training file and its validation file, if it names one (see resolve_upload)."""
    return (
        await resolve_upload(store, channel, training, "training"),
        await resolve_upload(store, channel, validation, "validation") if validation else None,
    )


async def resolve_upload(store: Store, channel: str, ref: str, role: str) -> Upload:
    """A file named by Slack file id, or by the name of a recent upload in the channel."""
    upload = await store.upload(ref)
    if upload is None:
        named = [u for u in await store.recent_uploads(channel, limit=200) if u.name == ref]
        # Newest valid one first (recent_uploads lists valid first).
        upload = named[0] if named else None
    if upload is None:
        raise RequestError(
            f"{role} file `{ref}`: no recent upload with that name or id in this channel; "
            "share the .jsonl here first and wait for its report"
        )
    if upload.state != "done" or upload.valid is None:
        raise RequestError(f"{role} file `{upload.name}` has not been checked successfully")
    if not upload.valid:
        raise RequestError(
            f"{role} file `{upload.name}` has errors (see its report); fix it and upload again"
        )
    return upload


class JobStarter:
    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        chat: Chat,
        nebius: NebiusClient,
        *,
        on_watch: Callable[[], None] | None = None,
    ) -> None:
        self.on_watch = on_watch
        # Fingerprints this process is starting now: an identical request waits for none of
        # them, however long Nebius takes.
        self.starting: set[str] = set()
        self.settings = settings
        self.store = store
        self.chat = chat
        self.nebius = nebius

    async def start(self, plan: CreatePlan, *, key: str, user: str, channel: str) -> str | None:
        """Runs the whole request; returns the job id, or None when it failed or was refused
        as a duplicate (and said so)."""
        fingerprint = request_fingerprint(plan, user=user, channel=channel)
        earlier = await self.store.claim_content(
            fingerprint,
            key,
            user_id=user,
            channel=channel,
            window_s=DUPLICATE_WINDOW_S,
            busy=fingerprint in self.starting,
        )
        if earlier is not None:
            if earlier.job_id is not None:
                # A redelivery of this request is answered with the job it duplicates.
                await self.store.finish_request(key, earlier.job_id)
            age = max(0.0, self.store.clock.time() - earlier.updated_at)
            link = None
            if earlier.channel and earlier.thread_ts:
                link = await self.chat.permalink(earlier.channel, earlier.thread_ts)
            await self.chat.ephemeral(
                channel,
                user,
                duplicate_request_message(
                    earlier.job_id, earlier.channel, earlier.thread_ts, age_s=age, link=link
                ),
            )
            return None
        self.starting.add(fingerprint)
        job_id = None
        interrupted = False
        try:
            job_id = await self._start(plan, key=key, user=user, channel=channel, fp=fingerprint)
        except asyncio.CancelledError:
            # A shutdown mid-start is a crash that had time to say so: the record and the
            # claim stay until the next start resolves them (resolve_interrupted).
            interrupted = True
            raise
        except Exception:
            # A failure, not a crash: nothing to resume at the next start.
            await self.store.end_start(key)
            raise
        finally:
            self.starting.discard(fingerprint)
            if job_id is None and not interrupted:
                # No job: the same request may be made again at once.
                await self.store.release_content(fingerprint, key)
        return job_id

    async def _start(
        self, plan: CreatePlan, *, key: str, user: str, channel: str, fp: str
    ) -> str | None:
        # Recorded before anything is said or sent, so a crash at any point is resolved at
        # the next start (resolve_interrupted).
        await self.store.begin_start(key, fp, channel=channel, user_id=user, plan=plan_record(plan))
        costs = Costs(self.store, self.nebius)
        guess = await costs.plan_estimate(plan.model, plan.training, plan.hyperparameters.n_epochs)
        parent = await self.chat.post(
            channel, job_starting_message(plan, user, estimate=start_cost_text(guess))
        )
        await self.store.content_thread(fp, key, channel, parent.ts)
        step = await self.chat.post(
            channel, job_step_message("Uploading the data to Nebius…"), thread_ts=parent.ts
        )
        await self.store.start_messages(key, parent.ts, step.ts)
        try:
            integrations = self._integrations(plan)  # before any upload: fail fast
            training_id = await self._nebius_file(plan.training, step)
            validation_id = (
                await self._nebius_file(plan.validation, step) if plan.validation else None
            )
            await self.chat.update(step, job_step_message("Starting the job on Nebius…"))
            request = JobRequest(
                model=plan.model,
                training_file=training_id,
                validation_file=validation_id,
                hyperparameters=plan.hyperparameters,
                suffix=plan.suffix,
                seed=plan.seed,
                integrations=integrations,
            )
            # From here a job may exist even if no answer comes: a restart looks for it.
            await self.store.start_creating(key, request_record(request))
            job = await self.nebius.create_job(request, file_wait_timeout=FILE_WAIT_S)
        except (NebiusError, ChatError, WandbNotConfigured) as error:
            await self.store.end_start(key)
            await self.store.release_request(key)
            hint = getattr(error, "hint", None)
            await self.chat.update(step, job_start_failed_message(error.message, hint))
            return None
        await self.store.finish_request(key, job.id)
        await self.store.finish_content(fp, key, job.id)
        await self.store.add_watch(job.id, channel, parent.ts, user)
        # What it was started from, for Retry (and, for a retry, the job it retries).
        record = plan_record(plan)
        await self.store.remember_job(
            job.id, channel=channel, user_id=user, plan=record, retry_of=plan.retry_of
        )
        await self.store.end_start(key)
        if self.on_watch is not None:
            self.on_watch()
        cost = await costs.card_text(job)
        await self.chat.update(parent, await card_message(self.store, job, cost=cost))
        await self.chat.update(step, job_step_message(f"Job `{job.id}` created."))
        if plan.retry_of:
            await link_retry(
                self.store, self.chat, self.nebius, old_job_id=plan.retry_of,
                new_job_id=job.id, where=parent, user=user,
            )  # fmt: skip
        return job.id

    # ---------------------------------------------------------------- after a restart

    async def resolve_interrupted(self) -> None:
        """Every start an earlier process left unfinished (a crash, a shutdown mid-start):
        the job it created is found on Nebius and followed, or the start is said to be
        interrupted and offered again. Never a second job for one request."""
        for start in await self.store.unfinished_starts():
            try:
                await self._resolve(start)
            except Exception:
                # One start that cannot be resolved must not keep the others waiting.
                log.exception("resolving the interrupted start %s failed", start.request_key)

    async def _resolve(self, start: PendingStart) -> None:
        if start.phase == "creating" and start.request is not None:
            request = JobRequest.model_validate(start.request)
            sent_at = start.create_sent_at if start.create_sent_at is not None else 0.0
            others = await self.store.jobs_watched_elsewhere(start.channel, start.message_ts)
            try:
                job = await self.nebius.find_created_job(request, sent_at=sent_at, exclude=others)
            except NebiusError as error:
                # Cannot tell: offering to start again could pay for a second job. The record
                # stays, to be looked at again at the next start.
                log.warning("interrupted start %s unresolved: %s", start.request_key, error)
                await self._say(start, start_unresolved_message(error.message), step=True)
                return
            if job is not None:
                await self._attach(start, job)
                return
        # No job from it: the same request may be made again at once.
        await self.store.release_content(start.fingerprint, start.request_key)
        await self.store.start_interrupted(start.request_key)
        message = start_interrupted_message(
            start.user_id,
            plan_summary(start.plan),
            start.phase,
            start.request_key,
            nebius_checked=start.phase == "creating",
        )
        await self._say(start, message)
        if start.message_ts is not None and start.step_ts is not None:
            await self._update(start.channel, start.step_ts, start_interrupted_step_message())

    async def _attach(self, start: PendingStart, job: Job) -> None:
        """The job the interrupted start created: recorded and followed as after a start."""
        key, fp = start.request_key, start.fingerprint
        thread = start.message_ts
        if thread is None:  # no message was posted before the crash: the card is a new one
            thread = (await self.chat.post(start.channel, job_card_message(job))).ts
        await self.store.finish_request(key, job.id)
        await self.store.finish_content(fp, key, job.id)
        if await self.store.watch(job.id) is None:  # a crash after the watch was added: keep it
            await self.store.add_watch(job.id, start.channel, thread, start.user_id)
        await self.store.remember_job(
            job.id,
            channel=start.channel,
            user_id=start.user_id,
            plan=start.plan,
            retry_of=start.plan.get("retry_of"),
        )
        await self.store.end_start(key)
        if self.on_watch is not None:
            self.on_watch()
        if start.message_ts is not None:
            await self._update(start.channel, start.message_ts, job_card_message(job))
        if start.step_ts is not None:
            await self._update(start.channel, start.step_ts, start_found_step_message(job.id))

    async def _say(self, start: PendingStart, message: Message, *, step: bool = False) -> None:
        """Into the request's message (or its step message), or afresh where there is none."""
        ts = start.step_ts if step and start.step_ts else start.message_ts
        if ts is not None and await self._update(start.channel, ts, message):
            return
        posted = await self.chat.post(start.channel, message)
        if start.message_ts is None:
            await self.store.start_messages(start.request_key, posted.ts, None)

    async def _update(self, channel: str, ts: str, message: Message) -> bool:
        try:
            await self.chat.update(MessageRef(channel, ts), message)
        except ChatError as error:  # deleted since, say
            log.info("message %s not updated (%s)", ts, error)
            return False
        return True

    async def take_again(self, key: str, *, user: str, channel: str) -> StartAgain | None:
        """A click on "Start again": the interrupted request, taken once (a second click finds
        nothing) and checked again; None when there is nothing to start (said to `user`), and
        RequestError when its files are no longer there or valid."""
        start = await self.store.take_interrupted_start(key)
        if start is None:
            await self.chat.ephemeral(channel, user, start_again_gone_message())
            return None
        plan = await plan_from_record(self.store, start.channel, start.plan)  # RequestError
        new_key = f"again:{key}"
        if not await self.store.claim_request(new_key):
            await self.chat.ephemeral(channel, user, start_again_gone_message())
            return None
        if start.message_ts is not None:
            what = plan_summary(start.plan)
            await self._update(
                start.channel, start.message_ts, started_again_message(start.user_id, what, user)
            )
        return StartAgain(plan=plan, key=new_key, channel=start.channel)

    def _integrations(self, plan: CreatePlan) -> list[WandbIntegration]:
        if plan.wandb is None:
            return []
        key = self.settings.wandb_api_key
        if key is None:
            raise WandbNotConfigured(
                "W&B logging needs WANDB_API_KEY in the bot's configuration "
                "(keys are never typed into Slack); ask whoever runs the bot, "
                "or start the job without wandb_project="
            )
        return [WandbIntegration(wandb=WandbSettings(**plan.wandb, api_key=key.get_secret_value()))]

    async def _nebius_file(self, upload: Upload, step: MessageRef) -> str:
        """The Nebius file id for an upload's content: uploaded once per sha256, then ready."""
        file_id = await self.store.nebius_file(upload.sha256) if upload.sha256 else None
        if file_id is None:
            file_id = await self._upload(upload, step)
        await self.chat.update(
            step, job_step_message(f"Waiting for Nebius to process the file `{upload.name}`…")
        )
        try:
            await self.nebius.wait_for_file(file_id, timeout=FILE_WAIT_S)
        except NebiusError as error:
            if error.status_code == 404 and upload.sha256:
                # Deleted on Nebius since: forget it so the next request uploads again.
                await self.store.forget_nebius_file(upload.sha256)
            raise
        return file_id

    async def _upload(self, upload: Upload, step: MessageRef) -> str:
        await self.chat.update(step, job_step_message(f"Uploading `{upload.name}` to Nebius…"))
        shared = shared_file_of(upload)
        with tempfile.TemporaryDirectory(prefix="xgenlens-job-") as tmp:
            path = Path(tmp) / "data.jsonl"
            await self.chat.fetch_file(shared, path, max_bytes=self.settings.max_upload_bytes)
            sha = sha256_of(path)
            known = await self.store.nebius_file(sha)
            if known is not None:
                return known
            uploaded: FileObject = await self.nebius.upload_file(path, filename=upload.name)
        # Another process may have uploaded the same content meanwhile: one file id for all.
        return await self.store.remember_nebius_file(sha, uploaded.id, upload.name, uploaded.bytes)
