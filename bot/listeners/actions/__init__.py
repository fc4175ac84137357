from slack_bolt.async_app import AsyncApp

from bot.blocks import Actions
from bot.listeners.actions.buttons import button_clicked


def register(app: AsyncApp) -> None:
    for action_id in (
        Actions.FINETUNE_WITH_FILE,
        Actions.USE_AS_VALIDATION,
        Actions.REFRESH_JOB,
        Actions.CANCEL_JOB,
        Actions.DOWNLOAD_CHECKPOINT,
        Actions.START_AGAIN,
    ):
        app.action(action_id)(button_clicked)
