from typing import Any

from bot.core import Bot


async def app_mentioned(
    ack: Any, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]
) -> None:
    await ack()
    bot: Bot = context["bot"]
    bot.mentioned(
        channel=event["channel"],
        thread_ts=event.get("thread_ts") or event["ts"],
        user=event.get("user"),
        event_id=body.get("event_id"),
    )
