from typing import Any

from bot.core import Bot, CommandRequest


async def finetune_command(ack: Any, command: dict[str, Any], context: dict[str, Any]) -> None:
    await ack()
    bot: Bot = context["bot"]
    bot.command(
        CommandRequest(
            text=command.get("text", ""),
            user=command["user_id"],
            channel=command["channel_id"],
            trigger_id=command.get("trigger_id"),
        )
    )
