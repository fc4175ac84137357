from typing import Any

from bot.core import Bot


async def app_home_opened(
    ack: Any, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]
) -> None:
    await ack()
    # Sent for the Messages and About tabs too, and again on every opening (each with an
    # event id of its own; a redelivery repeats it and is claimed once).
    if event.get("tab", "home") != "home" or not event.get("user"):
        return
    bot: Bot = context["bot"]
    bot.home_opened(event["user"], event_id=body.get("event_id"))
