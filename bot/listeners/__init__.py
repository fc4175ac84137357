"""Bolt listeners, laid out like slack-samples/bolt-python-starter-template.

Each callback acknowledges first and hands the request to the core (`context["bot"]`);
no logic lives here.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.core import Bot
from bot.listeners import actions, commands, events, views


def register_listeners(app: AsyncApp, bot: Bot) -> None:
    async def provide_bot(context: dict[str, Any], next: Any) -> None:
        context["bot"] = bot
        await next()

    app.use(provide_bot)
    commands.register(app)
    events.register(app)
    actions.register(app)
    views.register(app)
