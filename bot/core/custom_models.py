"""The command table's rows for custom models: `/finetune deploy`, `try`, `undeploy`, the
models list with the deployments, the Deploy, Try it and Delete buttons, and the Try it form.

The guard (bot.core.commands) has checked who may before any of these runs: deploying,
trying and deleting follow the same allowlists as create and cancel. The work is in
`bot.core.deploy` and `bot.core.try_model`; these only read the request and answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Coroutine
from typing import Any, Protocol

from bot.blocks.deploy import deployments_blocks, note_message, undeploy_confirm_message
from bot.blocks.jobs import models_message
from bot.chat_interface import Chat, Message
from bot.config import BotSettings
from bot.core.deploy import Deployer
from bot.core.requests import ButtonClick, CommandRequest, FormSubmission, ParsedCommand
from bot.core.try_model import Trier, TryError
from bot.store import Store
from client import NebiusClient, NebiusError, NotFoundError

log = logging.getLogger(__name__)

DEPLOY_HELP = ("deploy JOB [CHECKPOINT]", "a LoRA checkpoint as a custom model (default: best)")
TRY_HELP = ("try MODEL|JOB prompt...", "the fine-tuned and the base model, side by side")
UNDEPLOY_HELP = ("undeploy NAME", "delete a custom model (asks first)")
MODELS_HELP = ("models", "models you can fine-tune, and the custom models deployed")


class CustomModels:
    def __init__(
        self, settings: BotSettings, store: Store, chat: Chat, nebius: NebiusClient | None
    ) -> None:
        self.settings = settings
        self.store = store
        self.chat = chat
        self.nebius = nebius
        self.deployer = Deployer(store, chat, nebius) if nebius is not None else None
        self.trier = Trier(store, chat, nebius) if nebius is not None else None

    async def _tell(self, channel: str, user: str, message: Message) -> None:
        await self.chat.ephemeral(channel, user, message)

    # ------------------------------------------------------------------ models

    async def models(self, request: CommandRequest) -> None:
        assert self.nebius is not None
        message = models_message(await self.nebius.list_models())
        try:
            deployments = await self.nebius.list_deployments()
            note = None
        except NotFoundError:  # a server without `/v0/models`
            deployments, note = [], "This server serves no custom models."
        except NebiusError as error:
            deployments, note = [], f"The custom models could not be listed: {error.message}"
        blocks = [*message.blocks, {"type": "divider"}, *deployments_blocks(deployments, note)]
        await self._tell(
            request.channel,
            request.user,
            Message(text=f"{message.text}, {len(deployments)} custom models", blocks=blocks),
        )

    # ------------------------------------------------------------------ deploy

    async def deploy_command(self, request: CommandRequest, command: ParsedCommand) -> None:
        assert self.deployer is not None
        job_id = command.args[0]
        wanted = command.args[1] if len(command.args) > 1 else None
        thread = await self.deployer.thread_for(job_id, request.channel, None)
        answer = await self.deployer.deploy(
            job_id, wanted, user=request.user, channel=request.channel, thread_ts=thread
        )
        if answer is not None:
            await self._tell(request.channel, request.user, answer)

    async def deploy_button(self, click: ButtonClick) -> None:
        assert self.deployer is not None
        job_id, _, checkpoint_id = click.value.partition(":")
        thread = await self.deployer.thread_for(
            job_id, click.channel, click.thread_ts or click.message_ts, ephemeral=click.ephemeral
        )
        answer = await self.deployer.deploy(
            job_id, checkpoint_id or None, user=click.user, channel=click.channel, thread_ts=thread
        )
        if answer is not None:
            await self._tell(click.channel, click.user, answer)

    # ------------------------------------------------------------------ undeploy

    async def undeploy_command(self, request: CommandRequest, command: ParsedCommand) -> None:
        assert self.nebius is not None
        if not command.args:
            message = note_message(
                f"`undeploy` needs a custom model's full name: `{UNDEPLOY_HELP[0]}`."
            )
            await self._tell(request.channel, request.user, message)
            return
        # Looked up first: an unknown name says so before any question.
        deployment = await self.nebius.get_deployment(command.args[0])
        await self._tell(request.channel, request.user, undeploy_confirm_message(deployment))

    async def undeploy_button(self, click: ButtonClick) -> None:
        assert self.deployer is not None
        answer = await self.deployer.undeploy(click.value, user=click.user)
        await self._tell(click.channel, click.user, answer)

    # ------------------------------------------------------------------ try

    async def try_command(self, request: CommandRequest, command: ParsedCommand) -> None:
        assert self.trier is not None
        # The prompt as typed: `=` and quotes in it are words, not options.
        words = request.text.strip().split(None, 2)
        if len(words) < 3 or not words[2].strip():
            await self._tell(
                request.channel,
                request.user,
                note_message(f"`try` needs a model (or a job id) and a prompt: `{TRY_HELP[0]}`."),
            )
            return
        name, prompt = words[1], words[2].strip()
        try:
            target = await self.trier.target(name)
        except TryError as error:
            await self._tell(request.channel, request.user, note_message(f"Cannot try: {error}."))
            return
        thread = None
        if target.job_id and self.deployer is not None:
            thread = await self.deployer.thread_for(target.job_id, request.channel, None)
        await self.trier.ask(
            target.model,
            target.base,
            prompt,
            system=target.system_prompt,
            channel=request.channel,
            thread_ts=thread,
            user=request.user,
        )

    async def try_button(self, click: ButtonClick) -> None:
        assert self.trier is not None
        if not click.trigger_id:
            return
        thread = click.thread_ts or (None if click.ephemeral else click.message_ts)
        answer = await self.trier.open_form(
            click.trigger_id, click.value, channel=click.channel, thread_ts=thread
        )
        if answer is not None:
            await self._tell(click.channel, click.user, answer)

    async def try_submitted(
        self, form: FormSubmission
    ) -> tuple[dict[str, str], Coroutine[Any, Any, None] | None]:
        """The Try it form: errors by block id, or the asking to run in the background."""
        if self.trier is None:
            return {"prompt": "Nebius is not configured (no NEBIUS_API_KEY)."}, None
        errors, asked = self.trier.submitted(form.values, form.private_metadata, form.user)
        if asked is None:
            return errors, None
        reason = self.settings.may_manage_jobs(form.user, asked["channel"])
        if reason:
            return {"prompt": f"Sorry, {reason}."}, None
        key = f"try:{form.view_id or form.trigger_id or uuid.uuid4()}"
        return {}, self._ask_once(key, asked)

    async def _ask_once(self, key: str, asked: dict[str, Any]) -> None:
        if not await self.store.claim_request(key):
            return  # the same submission, delivered again
        assert self.trier is not None
        await self.trier.ask_from_form(asked)


# ---------------------------------------------------------------------- the table's handlers


class HasCustomModels(Protocol):
    """What the command table's rows hand the handlers below (bot.core.commands.CommandRunner)."""

    custom_models: CustomModels


async def models_command(
    runner: HasCustomModels, request: CommandRequest, command: ParsedCommand
) -> None:
    await runner.custom_models.models(request)


async def deploy_command(
    runner: HasCustomModels, request: CommandRequest, command: ParsedCommand
) -> None:
    await runner.custom_models.deploy_command(request, command)


async def try_command(
    runner: HasCustomModels, request: CommandRequest, command: ParsedCommand
) -> None:
    await runner.custom_models.try_command(request, command)


async def undeploy_command(
    runner: HasCustomModels, request: CommandRequest, command: ParsedCommand
) -> None:
    await runner.custom_models.undeploy_command(request, command)


async def deploy_button(runner: HasCustomModels, click: ButtonClick) -> None:
    await runner.custom_models.deploy_button(click)


async def try_button(runner: HasCustomModels, click: ButtonClick) -> None:
    await runner.custom_models.try_button(click)


async def undeploy_button(runner: HasCustomModels, click: ButtonClick) -> None:
    await runner.custom_models.undeploy_button(click)
