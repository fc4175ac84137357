"""The Slack-free core: what the bot does, whichever chat adapter delivers the requests."""

from bot.core.bot import Bot, ButtonClick, CommandRequest

__all__ = ["Bot", "ButtonClick", "CommandRequest"]
