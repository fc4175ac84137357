"""What the adapters hand the core: a typed command, a button click, a submitted form.

A module of its own so that the front door (`bot.core.bot`) and the handlers
(`bot.core.commands`) both import these without importing each other.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CommandRequest:
    """One `/finetune ...` as typed, with who typed it where."""

    text: str
    user: str
    channel: str
    trigger_id: str | None = None


@dataclass(frozen=True)
class ButtonClick:
    """A click on one of the bot's buttons."""

    action_id: str
    value: str
    user: str
    channel: str
    message_ts: str | None = None
    thread_ts: str | None = None
    trigger_id: str | None = None
    # Clicked in a message only the clicker sees (it cannot be updated through chat.update).
    ephemeral: bool = False


@dataclass(frozen=True)
class FormSubmission:
    """A submitted form; `values` is shaped like Slack's `view.state.values`, from Slack or
    the console."""

    callback_id: str
    private_metadata: str
    values: dict[str, dict[str, dict[str, Any]]]
    user: str
    trigger_id: str | None = None
    view_id: str | None = None


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
