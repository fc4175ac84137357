from typing import Any

from bot.core import Bot, ButtonClick


async def button_clicked(ack: Any, body: dict[str, Any], context: dict[str, Any]) -> None:
    await ack()
    bot: Bot = context["bot"]
    action = body["actions"][0]
    container = body.get("container") or {}
    bot.button(
        ButtonClick(
            action_id=action["action_id"],
            value=action.get("value", ""),
            user=body["user"]["id"],
            channel=(body.get("channel") or {}).get("id") or container.get("channel_id", ""),
            message_ts=container.get("message_ts"),
            thread_ts=(body.get("message") or {}).get("thread_ts"),
            trigger_id=body.get("trigger_id"),
            ephemeral=bool(container.get("is_ephemeral")),
        )
    )
