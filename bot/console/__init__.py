"""Console mode: the bot in a terminal, for when no Slack tokens are configured."""

from bot.console.main import main, run_console

__all__ = ["main", "run_console"]
