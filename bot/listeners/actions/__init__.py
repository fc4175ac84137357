from slack_bolt.async_app import AsyncApp

from bot.blocks.ids import Actions
from bot.core.commands import BUTTONS
from bot.core.home import HOME_TO_CARD
from bot.listeners.actions.buttons import button_clicked
from bot.listeners.actions.home import home_button_clicked, link_clicked


def register(app: AsyncApp) -> None:
    # Every button the core handles (its table of buttons), and only those.
    for button in BUTTONS:
        app.action(button.name)(button_clicked)
    # The Home tab's: each does what a button of the job's card does, in the job's thread.
    for action_id in HOME_TO_CARD:
        app.action(action_id)(home_button_clicked)
    app.action(Actions.HOME_OPEN_THREAD)(link_clicked)
