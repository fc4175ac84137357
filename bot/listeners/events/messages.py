from typing import Any

from bot.core import Bot
from bot.slack.files import shared_files


async def file_share_message(
    ack: Any, event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]
) -> None:
    await ack()
    bot: Bot = context["bot"]
    for file in shared_files(event):
        bot.file_shared(file, event_id=body.get("event_id"))


async def other_message(ack: Any) -> None:
    # Plain messages need no answer; acknowledging keeps Bolt from warning about them.
    await ack()
