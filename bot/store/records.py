"""What the store hands back: plain frozen records, the same from either database."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

# Slack retries an event for a few minutes at most; a day is well past any redelivery, and
# a job request key or content fingerprint is of no use after that either.
RETENTION_S = 24 * 3600
# Pruning runs at start and then once every this many claims: cheap, and the tables stay small
# however long the bot runs.
PRUNE_EVERY = 500
# A process renews its lease this many times per lease (see `Store.renew_every_s`).
RENEWALS_PER_LEASE = 3

# "preparing": uploading or waiting for Nebius's file processing, no job asked for yet;
# "creating": the create request was sent; "interrupted": a restart found it unfinished and
# said so, and it may be started again (once).
START_PHASES = ("preparing", "creating", "interrupted")


class LeaseLost(Exception):
    """This process no longer holds the watch it was about to post for: another took it over
    (this one's lease ran out), so the other one posts from here on."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"the watch of {job_id} is held by another process now")
        self.job_id = job_id


@dataclass(frozen=True)
class Watch:
    job_id: str
    channel: str
    # The job's card, whose thread the job's events go to.
    thread_ts: str
    user_id: str | None
    last_event_id: str | None
    status: str | None
    done: bool
    # The process (store session) that polls it; None: free for any process to claim.
    owner: str | None = None


@dataclass(frozen=True)
class OutboxEntry:
    """One post to a job's thread: "events" (first to last event id) or the end "summary"."""

    id: int
    job_id: str
    kind: str
    channel: str
    thread_ts: str
    first_event_id: str | None
    last_event_id: str | None
    state: str  # "pending" until Slack took it, then "done"
    ts: str | None


@dataclass(frozen=True)
class ContentRequest:
    """A job request remembered by its content fingerprint (see `claim_content`)."""

    fingerprint: str
    request_key: str
    user_id: str | None
    channel: str | None
    thread_ts: str | None
    job_id: str | None
    created_at: float
    # When it was claimed, or when its job was created: the duplicate window counts from here.
    updated_at: float


@dataclass(frozen=True)
class PendingStart:
    """A job start as far as it got: enough to finish it, or offer it again, after a crash."""

    request_key: str
    fingerprint: str
    channel: str
    user_id: str
    # The request's message (the thread's parent, the card-to-be) and its step message.
    message_ts: str | None
    step_ts: str | None
    # What was asked (files by Slack file id, settings, W&B names): see bot.core.jobs.
    plan: dict[str, Any]
    # The job body as sent, without secrets; None until the create request is sent.
    request: dict[str, Any] | None
    create_sent_at: float | None
    phase: str  # START_PHASES
    updated_at: float


@dataclass(frozen=True)
class Upload:
    slack_file_id: str
    channel: str
    thread_ts: str | None
    name: str
    user_id: str | None
    sha256: str | None
    valid: bool | None
    format: str | None
    report: dict[str, Any] | None
    state: str  # "validating" | "done" | "failed"
    created_at: float
    # The message with the report (its thread is the upload's), to update it in place.
    report_ts: str | None = None
    # The report of the same content checked as a validation file, once someone uses it as one.
    validation_report: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobPlan:
    """What a job was started from, kept for as long as the job may be retried: its plan
    (files by Slack file id, settings, W&B names; never a secret) and the job it retries."""

    job_id: str
    channel: str
    user_id: str | None
    plan: dict[str, Any]
    retry_of: str | None
    created_at: float


# A deployment claimed and not yet answered by Nebius ("deploying"), then Nebius's own states
# (client.deployments): "validating", "active", "error", "deleted". One that ended in error or
# was deleted may be deployed again; the others stand, so a second click deploys nothing.
DEPLOYMENT_REDEPLOYABLE = ("error", "deleted")
DEPLOYMENT_UNSETTLED = ("deploying", "validating")


@dataclass(frozen=True)
class StoredDeployment:
    """A checkpoint the bot deployed as a custom model: one per job and checkpoint."""

    job_id: str
    checkpoint_id: str
    # The full name as Nebius answered it (`<base>-LoRa:<name>-XXXX`); None until it answers.
    name: str | None
    requested_name: str | None
    base_model: str | None
    step: int | None
    state: str
    reason: str | None
    # The job's thread, and the message there that shows the progress (edited in place).
    channel: str
    thread_ts: str | None
    progress_ts: str | None
    user_id: str | None
    # The training data's system prompt: the Try it form starts from it.
    system_prompt: str | None
    created_at: float
    updated_at: float

    @property
    def source(self) -> str:
        return f"{self.job_id}:{self.checkpoint_id}"


Row = Mapping[str, Any]
R = TypeVar("R")


def _record(kind: type[R], row: Row, **decoded: Any) -> R:
    """The record of a row, field by column of the same name; `decoded` gives the fields
    whose columns hold them otherwise (JSON text, 0 or 1)."""
    named = {f.name: row[f.name] for f in fields(kind) if f.name not in decoded}
    return kind(**named, **decoded)


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def watch_from(row: Row) -> Watch:
    return _record(Watch, row, done=bool(row["done"]))


def outbox_entry_from(row: Row) -> OutboxEntry:
    return _record(OutboxEntry, row, id=int(row["id"]))


def content_request_from(row: Row) -> ContentRequest:
    return _record(ContentRequest, row)


def pending_start_from(row: Row) -> PendingStart:
    return _record(PendingStart, row, plan=json.loads(row["plan"]), request=_json(row["request"]))


def upload_from(row: Row) -> Upload:
    return _record(
        Upload,
        row,
        valid=None if row["valid"] is None else bool(row["valid"]),
        report=_json(row["report"]),
        validation_report=_json(row["validation_report"]),
    )


def job_plan_from(row: Row) -> JobPlan:
    return _record(JobPlan, row, plan=json.loads(row["plan"]))


def stored_deployment_from(row: Row) -> StoredDeployment:
    return _record(StoredDeployment, row)
