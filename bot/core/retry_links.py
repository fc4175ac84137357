"""A job and its retry, linked both ways: in the store (`job_plans.retry_of`), on both
cards (Retry of / Retried as), and by a note in each thread that points at the other.

Apart from `bot.core.retry` because the job starter uses it once the new job exists, and
the retry handlers use the starter."""

from __future__ import annotations

import logging

from bot.blocks.jobs import job_card_message
from bot.blocks.retry import JobLinks, retried_here_message, retry_of_message
from bot.chat_interface import Chat, ChatError, Message, MessageRef
from bot.store import Store
from client import Job, NebiusClient, NebiusError

log = logging.getLogger(__name__)

# The parts of a plan that make it "the same files and settings" (names are only labels).
SETTINGS = ("model", "training", "validation", "hyperparameters", "suffix", "seed", "wandb")


async def job_links(store: Store, job_id: str) -> JobLinks:
    plan = await store.job_plan(job_id)
    return JobLinks(
        retry_of=plan.retry_of if plan is not None else None,
        retried_as=await store.retries_of(job_id),
    )


async def card_message(store: Store, job: Job, *, cost: str | None = None) -> Message:
    """The job's card with its links to the job it retries and to its retries (and its
    cost, bot.core.costs, when the caller has it)."""
    return job_card_message(job, cost=cost, links=await job_links(store, job.id))


async def link_retry(
    store: Store,
    chat: Chat,
    nebius: NebiusClient,
    *,
    old_job_id: str,
    new_job_id: str,
    where: MessageRef,
    user: str,
) -> None:
    """Once the retry exists (its plan recorded with `retry_of`): a note in each thread
    naming the other, and the old card shows the retry. The new job is started whatever
    happens here, so a failure is logged, not raised."""
    old, new = await store.job_plan(old_job_id), await store.job_plan(new_job_id)
    edited = (
        old is not None
        and new is not None
        and any(old.plan.get(k) != new.plan.get(k) for k in SETTINGS)
    )
    old_watch = await store.watch(old_job_id)
    try:
        new_link = await chat.permalink(where.channel, where.ts)
        old_link = None
        if old_watch is not None:
            old_link = await chat.permalink(old_watch.channel, old_watch.thread_ts)
        await chat.post(
            where.channel,
            retry_of_message(old_job_id, new_job_id, edited=edited, link=old_link),
            thread_ts=where.ts,
        )
        if old_watch is None:
            return
        await chat.post(
            old_watch.channel,
            retried_here_message(old_job_id, new_job_id, user, new_link),
            thread_ts=old_watch.thread_ts,
        )
        old_job = await nebius.retrieve_job(old_job_id)
        card = MessageRef(old_watch.channel, old_watch.thread_ts)
        await chat.update(card, await card_message(store, old_job))
    except (ChatError, NebiusError) as error:
        log.warning("linking job %s to its retry %s: %s", old_job_id, new_job_id, error)
