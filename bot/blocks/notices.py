"""Short notices: usage, refusals, errors."""

from collections.abc import Iterable

from bot.blocks.common import (
    actions,
    button,
    code_block,
    context,
    hinted_message,
    section,
    text_message,
)
from bot.blocks.ids import Actions
from bot.chat_interface import Message

# Where each usage line's summary starts: the syntax is padded to this width.
USAGE_COLUMN = 40


def usage_text(entries: Iterable[tuple[str, str]], footer: str = "") -> str:
    """The help's layout: `/finetune SYNTAX   summary`, one entry a line; a syntax's further
    lines (a long `create`) are indented under the verb's first argument."""
    lines = []
    for syntax, summary in entries:
        first, *more = syntax.split("\n")
        head = f"/finetune {first}"
        lines.append(f"{head:<{USAGE_COLUMN - 1}} {summary}" if summary else head)
        indent = " " * len(f"/finetune {first.split()[0]} ")
        lines += [indent + line for line in more]
    if footer:
        lines.append(footer)
    return "\n".join(lines)


def usage_message(usage: str, problem: str | None = None) -> Message:
    """`usage` (bot.core.commands.HELP, rendered from its table of verbs), after `problem`."""
    blocks = []
    if problem:
        blocks.append(section(f":warning: {problem}"))
    blocks.append(code_block(usage))
    text = f"{problem}\n{usage}" if problem else usage
    return Message(text=text, blocks=blocks)


def refusal_message(reason: str) -> Message:
    text = f"Sorry, {reason}. Ask an admin of this bot to add you (XGENLENS_ALLOWED_USERS)."
    return Message(text=text, blocks=[section(f":no_entry: {text}")])


def error_message(what: str, detail: str, hint: str | None = None) -> Message:
    text = f"{what}: {detail}" + (f"\n{hint}" if hint else "")
    blocks = [section(f":x: *{what}*\n{detail}")]
    if hint:
        blocks.append(context(f":bulb: {hint}"))
    return Message(text=text, blocks=blocks)


def mention_message(user: str | None) -> Message:
    who = f"<@{user}> " if user else ""
    text = (
        f"{who}Hi! Share a `.jsonl` dataset in this channel and I will check it; "
        "`/finetune help` lists what else I can do."
    )
    return text_message(text)


# ---- job starts a restart of the bot interrupted (bot/core/jobs.py resolves them)

# What an interrupted start was doing, by its phase in the store.
INTERRUPTED_DURING = {
    "preparing": "while it was getting the data to Nebius",
    "creating": "while it was asking Nebius for the job",
}


def start_interrupted_message(
    user: str, what: str, phase: str, key: str, *, nebius_checked: bool
) -> Message:
    """The request's message, once a restart found its start unfinished and no job from it.

    `what` names the job (model and files); the button (its value the request key) starts the
    same request again, once.
    """
    during = INTERRUPTED_DURING.get(phase, "")
    checked = " Nebius has no job from it." if nebius_checked else ""
    text = (
        f":warning: <@{user}>'s fine-tuning job ({what}) was not started: the bot restarted "
        f"{during}.{checked}"
    )
    hint = "Start it again with the button (once), or type the same `/finetune create` again."
    blocks = [
        section(text),
        actions(button("Start again", Actions.START_AGAIN, key, style="primary")),
        context(f":bulb: {hint}"),
    ]
    return Message(text=f"{text}\n{hint}", blocks=blocks)


def start_interrupted_step_message() -> Message:
    text = "Interrupted: the bot restarted before the job was created; see the message above."
    return Message(text=text, blocks=[context(f":warning: {text}")])


def start_found_step_message(job_id: str) -> Message:
    text = f"Job `{job_id}` created (found on Nebius after the bot restarted)."
    return Message(text=text, blocks=[context(f":hourglass_flowing_sand: {text}")])


def start_unresolved_message(problem: str) -> Message:
    """A restart could not ask Nebius whether the interrupted start created a job."""
    text = (
        ":warning: The bot restarted while asking Nebius for this job, and cannot tell yet "
        f"whether the job was created: {problem}"
    )
    hint = (
        "Run `/finetune list` to see whether it exists before starting it again; the bot "
        "looks again the next time it starts."
    )
    return hinted_message(text, hint)


def started_again_message(user: str, what: str, clicker: str) -> Message:
    text = (
        f":leftwards_arrow_with_hook: <@{user}>'s fine-tuning job ({what}) was interrupted by a "
        f"restart of the bot; <@{clicker}> started it again (see the newer message)."
    )
    return text_message(text)


def start_again_gone_message() -> Message:
    text = (
        "This request was already started again (see the channel), or it is too old to be "
        "started again from here; type the `/finetune create` again if you still want it."
    )
    return text_message(text)


# ---- files Slack names by id only (Slack Connect, or still being processed)


def file_unreadable_message(file_id: str, problem: str) -> Message:
    text = f":warning: I could not read the file `{file_id}` shared here: {problem}"
    hint = (
        "If it is a `.jsonl` dataset, share it again in a minute (Slack may still be "
        "processing it); in a Slack Connect channel, the bot needs access to the file "
        "(share it from this workspace, or upload it again here)."
    )
    return hinted_message(text, hint)
