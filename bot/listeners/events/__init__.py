from slack_bolt.async_app import AsyncApp

from bot.listeners.events.app_home import app_home_opened
from bot.listeners.events.app_mention import app_mentioned
from bot.listeners.events.messages import file_share_message, other_message


def register(app: AsyncApp) -> None:
    app.event({"type": "message", "subtype": "file_share"})(file_share_message)
    app.event("message")(other_message)
    app.event("app_mention")(app_mentioned)
    app.event("app_home_opened")(app_home_opened)
