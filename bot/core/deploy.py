"""Deploy: a succeeded LoRA job's checkpoint (the best one unless told) as a custom model.

A click (or `/finetune deploy JOB [CHECKPOINT]`) claims the checkpoint in the store first, so a
double click, a redelivery or another process deploys it once; then one message in the job's
thread shows the progress and is edited in place while Nebius validates the adapter (never a
message per poll), and once the model is active a new message names it with a Try it button.
The full name is kept as Nebius answered it. A restart follows an unsettled deployment on
(`resume`). Undeploy deletes a model after a confirmation, like cancel.
"""

from __future__ import annotations

import asyncio
import logging

from bot.blocks.deploy import (
    already_deployed_message,
    already_undeployed_message,
    deploy_done_message,
    deploy_failed_message,
    deploy_progress_message,
    deploy_still_waiting_message,
    deployed_message,
    deploying_message,
    full_fine_tune_message,
    note_message,
    undeployed_message,
)
from bot.chat_interface import Chat, Message, MessageRef
from bot.core.try_model import training_system_prompt
from bot.store import Store, StoredDeployment
from client import Job, NebiusClient, NebiusError, NotFoundError
from client.checkpoints import CheckpointNotFound, ChosenCheckpoint, choose_checkpoint
from client.deployments import (
    ACTIVE,
    DELETED,
    ERROR,
    Deployment,
    DeploymentFailed,
    DeploymentTimeout,
    default_name,
    inference_base,
    is_lora,
)

log = logging.getLogger(__name__)

# The progress message shows the state, and the time so far in steps of this many seconds:
# a few edits a minute at most, whatever the poll interval.
PROGRESS_EVERY_S = 30.0
# What a deployment a restart interrupted before Nebius answered says (none was found).
INTERRUPTED = "a restart interrupted it before Nebius answered, and none was found: deploy again"


class DeployRefused(Exception):
    """Why this checkpoint cannot be deployed (shown to whoever asked)."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.text)
        self.message = message


class Deployer:
    def __init__(self, store: Store, chat: Chat, nebius: NebiusClient) -> None:
        self.store = store
        self.chat = chat
        self.nebius = nebius

    async def thread_for(
        self, job_id: str, channel: str, hint: str | None, *, ephemeral: bool = False
    ) -> str | None:
        """Where a job's deploy messages go: its thread when this channel follows the job,
        else the thread the click came from, else None (a new message in the channel)."""
        watch = await self.store.watch(job_id)
        if watch is not None and watch.channel == channel:
            return watch.thread_ts
        return None if ephemeral else hint

    async def deploy(
        self,
        job_id: str,
        wanted: str | None,
        *,
        user: str,
        channel: str,
        thread_ts: str | None,
    ) -> Message | None:
        """Deploys and follows the deployment until it settles; returns what to tell the
        person who asked (only) when nothing was deployed, else None."""
        try:
            job, chosen = await self._checkpoint(job_id, wanted)
        except DeployRefused as refused:
            return refused.message
        standing = await self.store.claim_deployment(
            job.id, chosen.id, channel=channel, thread_ts=thread_ts, user_id=user, step=chosen.step
        )
        if standing is not None:
            return already_deployed_message(standing)
        name = default_name(job, chosen.step)
        base = inference_base(job.model or "")
        try:
            progress = await self.chat.post(
                channel, deploying_message(job.id, chosen, base, name, user), thread_ts=thread_ts
            )
        except Exception:
            await self.store.update_deployment(
                job.id, chosen.id, state=ERROR, reason="the thread could not be posted to"
            )
            raise
        await self.store.update_deployment(
            job.id, chosen.id, requested_name=name, base_model=base, progress_ts=progress.ts
        )
        try:
            deployment = await self.nebius.deploy(
                job.id,
                chosen.id,
                name=name,
                base_model=base,
                description=f"{job.id} step {chosen.step} (XGenLens bot)",
            )
        except NebiusError as error:
            await self.store.update_deployment(job.id, chosen.id, state=ERROR, reason=error.message)
            await self.chat.update(
                progress, deploy_failed_message(error.message, error.hint, job.id)
            )
            return None
        # Kept as answered: the generated ending cannot be derived from the name asked for.
        await self.store.update_deployment(
            job.id, chosen.id, name=deployment.name, state=deployment.state
        )
        if job.training_file:
            prompt = await training_system_prompt(self.nebius, job.training_file)
            if prompt:
                await self.store.update_deployment(job.id, chosen.id, system_prompt=prompt)
        stored = await self.store.deployment(job.id, chosen.id)
        assert stored is not None
        await self.follow(stored)
        return None

    async def _checkpoint(self, job_id: str, wanted: str | None) -> tuple[Job, ChosenCheckpoint]:
        job = await self.nebius.retrieve_job(job_id)
        # Refused before any deploy call: Nebius serves only LoRA adapters serverless.
        if is_lora(job) is False:
            raise DeployRefused(full_fine_tune_message(job.id))
        if job.status != "succeeded":
            raise DeployRefused(
                note_message(
                    f"Job `{job.id}` is {job.status}: a succeeded job's checkpoints deploy."
                )
            )
        try:
            chosen = choose_checkpoint(await self.nebius.list_checkpoints(job.id), wanted)
        except CheckpointNotFound as error:
            raise DeployRefused(note_message(f"Cannot deploy: {error}.")) from None
        return job, chosen

    async def follow(self, stored: StoredDeployment) -> None:
        """Waits until the deployment settles, editing its progress message in place; once
        active, names it in the thread with a Try it button."""
        assert stored.name is not None
        name, job_id = stored.name, stored.job_id
        ref = MessageRef(stored.channel, stored.progress_ts) if stored.progress_ts else None
        edits = _Edits(self.chat, ref)
        elapsed = [0.0]

        def on_progress(current: Deployment, seconds: float) -> None:
            elapsed[0] = seconds
            step = int(seconds // PROGRESS_EVERY_S)
            edits.show(
                (current.state, step), deploy_progress_message(name, current.state, seconds, job_id)
            )

        try:
            deployment = await self.nebius.wait_for_deployment(name, on_progress=on_progress)
        except DeploymentFailed as error:
            await edits.settle()
            reason = error.message
            state = DELETED if "deleted" in reason else ERROR
            await self.store.update_deployment(
                job_id, stored.checkpoint_id, state=state, reason=reason
            )
            await edits.final(deploy_failed_message(reason, error.hint, job_id))
            return
        except DeploymentTimeout:
            await edits.settle()
            await edits.final(deploy_still_waiting_message(name, elapsed[0], job_id))
            return
        except NebiusError as error:
            await edits.settle()
            # The deployment may well exist: it stays unsettled, and `/finetune models` says.
            await edits.final(deploy_failed_message(error.message, error.hint, job_id))
            return
        await edits.settle()
        await self.store.update_deployment(
            job_id, stored.checkpoint_id, state=ACTIVE, base_model=deployment.base_model
        )
        await edits.final(deploy_done_message(stored, name, elapsed[0]))
        await self.chat.post(
            stored.channel,
            deployed_message(stored, name, deployment.base_model or stored.base_model),
            # Asked outside any thread: the progress message began one.
            thread_ts=stored.thread_ts or stored.progress_ts,
        )

    async def resume(self) -> None:
        """At start: the deployments processes now gone left unsettled, followed on."""
        for stored in await self.store.unfinished_deployments():
            try:
                await self._resume(stored)
            except Exception:
                log.exception("following deployment %s again failed", stored.source)

    async def _resume(self, stored: StoredDeployment) -> None:
        if stored.name is None:
            found = None
            if stored.requested_name:
                found = await self.nebius.find_deployment(
                    stored.source, stored.requested_name, since=stored.created_at
                )
            if found is None:
                await self.store.update_deployment(
                    stored.job_id, stored.checkpoint_id, state=ERROR, reason=INTERRUPTED
                )
                if stored.progress_ts:
                    await self.chat.update(
                        MessageRef(stored.channel, stored.progress_ts),
                        deploy_failed_message(INTERRUPTED, None, stored.job_id),
                    )
                return
            await self.store.update_deployment(
                stored.job_id, stored.checkpoint_id, name=found.name, state=found.state
            )
            stored = await self.store.deployment(stored.job_id, stored.checkpoint_id) or stored
        await self.follow(stored)

    # ------------------------------------------------------------------ undeploy

    async def undeploy(self, full_name: str, *, user: str) -> Message:
        """Deletes a custom model; says so in its thread (when the bot made it) and returns
        what to tell whoever clicked. A second click finds it gone and says so."""
        try:
            deleted = await self.nebius.delete_deployment(full_name)
        except NotFoundError:
            stored = await self.store.deployment_named(full_name)
            if stored is not None:
                await self.store.update_deployment(
                    stored.job_id, stored.checkpoint_id, state=DELETED
                )
            return already_undeployed_message(full_name)
        stored = await self.store.deployment_named(full_name)
        message = undeployed_message(deleted.name, user)
        if stored is not None:
            await self.store.update_deployment(stored.job_id, stored.checkpoint_id, state=DELETED)
            try:
                thread = stored.thread_ts or stored.progress_ts
                await self.chat.post(stored.channel, message, thread_ts=thread)
            except Exception as error:  # the thread gone: the clicker still hears it
                log.info("undeploy note for %s not posted (%s)", full_name, error)
        return message


class _Edits:
    """Edits one message in place from a synchronous progress callback: an edit only when
    what it shows changes, one at a time and in order."""

    def __init__(self, chat: Chat, ref: MessageRef | None) -> None:
        self.chat = chat
        self.ref = ref
        self.shown: object = None
        self.last: asyncio.Task[None] | None = None

    def show(self, key: object, message: Message) -> None:
        if self.ref is None or key == self.shown:
            return
        self.shown = key
        self.last = asyncio.get_running_loop().create_task(self._edit(self.last, message))

    async def _edit(self, before: asyncio.Task[None] | None, message: Message) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        assert self.ref is not None
        try:
            await self.chat.update(self.ref, message)
        except Exception as error:  # a progress edit lost is no reason to stop following
            log.info("deploy progress not shown (%s)", error)

    async def settle(self) -> None:
        if self.last is not None:
            await asyncio.gather(self.last, return_exceptions=True)

    async def final(self, message: Message) -> None:
        if self.ref is not None:
            await self.chat.update(self.ref, message)
