"""Retry from the card of a failed or cancelled job: **Retry** starts a new job with the same
files and settings (the plan the starter recorded for the job; the W&B key comes from the
configuration at retry), **Edit and retry** opens the create form filled in with them. The
new job and the old one are linked both ways (`bot.core.retry_links`).

A retry is one job whatever Slack redelivers or a double click sends: the click claims the
request key `retry:JOB` (one statement, so one process wins), and a job retried already
answers with its retry.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from bot.blocks.retry import (
    RETRYABLE,
    already_retried_message,
    cannot_retry_message,
    filled_create_view,
    not_retryable_message,
)
from bot.core.jobs import RequestError, plan_from_record
from bot.core.requests import ButtonClick
from bot.store import JobPlan

if TYPE_CHECKING:
    from bot.core.commands import CommandRunner

NO_PLAN = (
    "this bot has no record of its files and settings (it was started elsewhere, or before "
    "the bot kept them)."
)


def retry_key(job_id: str) -> str:
    return f"retry:{job_id}"


async def _already(runner: CommandRunner, click: ButtonClick, old: str, new: str | None) -> None:
    link = None
    if new is not None and (watch := await runner.store.watch(new)) is not None:
        link = await runner.chat.permalink(watch.channel, watch.thread_ts)
    await runner.tell(click, already_retried_message(old, new, link))


async def _plan(runner: CommandRunner, click: ButtonClick, job_id: str) -> JobPlan | None:
    record = await runner.store.job_plan(job_id)
    if record is None:
        await runner.tell(click, cannot_retry_message(job_id, NO_PLAN))
    return record


async def retry_button(runner: CommandRunner, click: ButtonClick) -> None:
    """Retry: the same files and settings, a new job, once."""
    job_id = click.value
    retries = await runner.store.retries_of(job_id)
    if retries:
        await _already(runner, click, job_id, retries[-1])
        return
    key = retry_key(job_id)
    if not await runner.store.claim_request(key):
        await _already(runner, click, job_id, await runner.store.request_job(key))
        return
    started = False
    try:
        record = await _plan(runner, click, job_id)
        if record is None:
            return
        job = await runner.api.retrieve_job(job_id)
        if job.status not in RETRYABLE:
            await runner.tell(click, not_retryable_message(job))
            return
        try:
            plan = await plan_from_record(runner.store, record.channel, record.plan)
        except RequestError as error:
            await runner.tell(click, cannot_retry_message(job_id, f"{error}."))
            return
        started = True
        plan = dataclasses.replace(plan, retry_of=job_id)
        await runner._start(plan, key=key, user=click.user, channel=click.channel)
    finally:
        if not started:
            await runner.store.release_request(key)  # nothing started: it may be pressed again


async def edit_and_retry_button(runner: CommandRunner, click: ButtonClick) -> None:
    """Edit and retry: the create form, filled in with the job's files and settings; the job
    it starts is linked to this one."""
    job_id = click.value
    if not click.trigger_id:
        return  # no form can open without Slack's trigger (a replayed click)
    record = await _plan(runner, click, job_id)
    if record is None:
        return
    plan = record.plan
    await runner.open_create_form(
        click.channel,
        click.trigger_id,
        training=plan.get("training"),
        validation=plan.get("validation"),
        prefill=lambda view: filled_create_view(view, plan, job_id),
    )
