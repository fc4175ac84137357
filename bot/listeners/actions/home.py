from typing import Any

from bot.core import Bot, ButtonClick


async def home_button_clicked(ack: Any, body: dict[str, Any], context: dict[str, Any]) -> None:
    await ack()
    bot: Bot = context["bot"]
    action = body["actions"][0]
    # Clicked in the Home tab: no channel; the core finds the job's own.
    bot.home_button(
        ButtonClick(
            action_id=action["action_id"],
            value=action.get("value", ""),
            user=body["user"]["id"],
            channel="",
            trigger_id=body.get("trigger_id"),
        )
    )


async def link_clicked(ack: Any) -> None:
    # A link button opens its URL in Slack; the click still comes here and wants an answer.
    await ack()
