"""The Slack-free core: what the bot does, whichever chat adapter delivers the requests."""

from bot.core.bot import Bot
from bot.core.requests import ButtonClick, CommandRequest, FormSubmission

__all__ = ["Bot", "ButtonClick", "CommandRequest", "FormSubmission"]
