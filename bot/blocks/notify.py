"""Messages of `/finetune notify`: what a channel's job threads receive."""

from __future__ import annotations

from bot.blocks.common import context, section, text_message
from bot.chat_interface import Message

# What each mode sends, as the help and the confirmation say it.
MODE_TEXT = {
    "all": "every event, the card and the summary (the default)",
    "summary": "only the card and the summary",
    "failures": "the card, the summary, and failures with a mention of whoever started the job",
}

NOTIFY_HINT = "`/finetune notify " + "|".join(MODE_TEXT) + "` changes it."


def notify_set_message(mode: str, user: str) -> Message:
    """Said in the channel: everyone's threads there change."""
    text = f":bell: <@{user}> set what job threads in this channel receive: {MODE_TEXT[mode]}."
    return Message(
        text=text,
        blocks=[section(text), context("The card stays current in every mode.")],
    )


def notify_current_message(mode: str, explicit: bool) -> Message:
    how = "" if explicit else " (nobody has chosen yet)"
    text = f"Job threads in this channel receive {MODE_TEXT[mode]}{how}. {NOTIFY_HINT}"
    return text_message(text)
