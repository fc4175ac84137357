from slack_bolt.async_app import AsyncApp

from bot.blocks.ids import Views
from bot.listeners.views.create_job import create_job_submitted


def register(app: AsyncApp) -> None:
    app.view(Views.CREATE_JOB)(create_job_submitted)
    # Read the same way (bot.core reads the callback id): a prompt's errors, or {} and it runs.
    app.view(Views.TRY_MODEL)(create_job_submitted)
