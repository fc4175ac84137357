"""Every message the bot sends is built here, as Block Kit plus a plain-text fallback.

Adapters render these (Slack sends them as they are; the console renders them as text), so no
other module writes Block Kit.
"""

from bot.blocks.common import button, code_block, context, section
from bot.blocks.ids import Actions
from bot.blocks.notices import (
    error_message,
    mention_message,
    refusal_message,
    usage_message,
)
from bot.blocks.uploads import download_progress_message, upload_problem_message, upload_report

__all__ = [
    "Actions",
    "button",
    "code_block",
    "context",
    "download_progress_message",
    "error_message",
    "mention_message",
    "refusal_message",
    "section",
    "upload_problem_message",
    "upload_report",
    "usage_message",
]
