"""Less noise: per channel, `/finetune notify all|summary|failures` chooses what a job's
thread receives. "all" (the default) is every event, the card and the summary with a
mention of whoever started the job; "summary" only the card and the summary, mentioning no
one; "failures" those plus the events that report an error, with a mention (and the summary
of a failed job mentions too). The card stays current in every mode: only replies change.

The watcher asks for the channel's mode at each poll (one lookup by key), so a change made
in any process applies from the next poll on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.blocks import error_message
from bot.blocks.jobs import job_events_replies
from bot.blocks.notify import MODE_TEXT, NOTIFY_HINT, notify_current_message, notify_set_message
from bot.chat_interface import Message
from bot.core.requests import CommandRequest, ParsedCommand
from bot.store import Store
from client import Event, Job

if TYPE_CHECKING:
    from bot.core.commands import CommandRunner

NOTIFY_MODES = tuple(MODE_TEXT)  # all, summary, failures
DEFAULT_MODE = "all"
# Event levels that count as a failure (Nebius and OpenAI say "error"; some servers more).
FAILURE_LEVELS = ("error", "fatal", "critical")


async def channel_mode(store: Store, channel: str) -> str:
    mode = await store.notify_mode(channel)
    return mode if mode in NOTIFY_MODES else DEFAULT_MODE


def is_failure(event: Event) -> bool:
    return (event.level or "").lower() in FAILURE_LEVELS


@dataclass(frozen=True)
class EventPosts:
    """What to post of a poll's new events, and the event to move on to without a post
    (the last one, when it is not in a reply): what the mode leaves out is never posted
    later either."""

    replies: list[Message]
    skip_to: str | None


def _mentioning(reply: Message, user: str) -> Message:
    mention = f"<@{user}> the job reported a failure:"
    return Message(
        text=f"{mention} {reply.text}",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": mention}}, *reply.blocks],
        metadata=reply.metadata,
    )


def event_posts(
    mode: str, job_id: str, events: list[Event], *, user: str | None, job: Job | None = None
) -> EventPosts:
    """The replies for new events (oldest first) in this mode."""
    if mode not in ("summary", "failures"):
        return EventPosts(job_events_replies(job_id, events), None)
    kept = [e for e in events if mode == "failures" and is_failure(e)]
    replies = job_events_replies(job_id, kept)
    # A job that has ended is summed up next, with its own mention: one is enough.
    if user and not (job is not None and job.is_terminal):
        replies = [_mentioning(reply, user) for reply in replies]
    last = events[-1].id if events and (not kept or kept[-1] is not events[-1]) else None
    return EventPosts(replies, last)


def summary_mention(mode: str, job: Job, user: str | None) -> str | None:
    """Whom the summary mentions in this mode."""
    if mode == "summary" or (mode == "failures" and job.status != "failed"):
        return None
    return user


async def notify_command(
    runner: CommandRunner, request: CommandRequest, command: ParsedCommand
) -> None:
    """`/finetune notify [all|summary|failures]` (the allowlists apply: the table's row)."""
    if not command.args:
        mode = await runner.store.notify_mode(request.channel)
        message = notify_current_message(mode or DEFAULT_MODE, explicit=mode is not None)
        await runner.tell(request, message)
        return
    mode = command.args[0].lower()
    if mode not in NOTIFY_MODES or len(command.args) > 1:
        choices = "|".join(NOTIFY_MODES)
        problem = f"`notify` takes one of {choices} (got `{' '.join(command.args)}`)."
        message = error_message("Notifications not changed", problem, NOTIFY_HINT)
        await runner.tell(request, message)
        return
    await runner.store.set_notify_mode(request.channel, mode, request.user)
    await runner.chat.post(request.channel, notify_set_message(mode, request.user))
