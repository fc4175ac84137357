"""Try it: one prompt to a fine-tuned model and to its base model, answers side by side.

From a deployment's Try it button (a form: the prompt, and the training data's system prompt
prefilled) or inline, `/finetune try MODEL|JOB prompt...`. MODEL is a deployment's full name;
JOB finds the job's active deployment (the bot's own first), or on a server that names
fine-tuned models (the local engine) the best checkpoint's model (client.compare.targets).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from bot.blocks.deploy import note_message, try_answers_message, try_view
from bot.chat_interface import Chat, Message
from bot.store import Store
from client import NebiusClient, NebiusError, NotFoundError
from client.chat import messages_for
from client.compare.targets import TargetError, find_targets
from client.deployments import inference_base

log = logging.getLogger(__name__)

# An answer long enough to judge the model by, and bounded (each answer is paid for, and a
# Slack field holds 2,000 characters).
TRY_MAX_TOKENS = 512
# The training file's first example is read for its system prompt: at most this much of it.
FIRST_LINE_MAX_BYTES = 256 * 1024
# The form opens on Slack's 3-second trigger: a lookup that takes longer is left out.
FORM_LOOKUP_WAIT_S = 1.5
JOB_ID = re.compile(r"^ftjob[-_]")


class TryError(Exception):
    """No model to try: says why and what to give instead."""


@dataclass(frozen=True)
class TryTarget:
    model: str
    base: str
    system_prompt: str | None
    job_id: str | None


async def training_system_prompt(nebius: NebiusClient, file_id: str) -> str | None:
    """The system prompt of a training file's first example (chat format), or None: read
    from the start of the file's content only, never the whole file."""
    data = b""
    try:
        async with nebius.stream_file_content(file_id) as (_, chunks):
            async for chunk in chunks:
                data += chunk
                if b"\n" in data.lstrip(b"\r\n") or len(data) >= FIRST_LINE_MAX_BYTES:
                    break
    except NebiusError as error:
        log.info("no system prompt from %s (%s)", file_id, error)
        return None
    return system_prompt_of(data.lstrip(b"\r\n").split(b"\n", 1)[0])


def system_prompt_of(line: bytes) -> str | None:
    """The first system message of one chat example (a JSONL line), or None."""
    try:
        example = json.loads(line.decode("utf-8"))
    except ValueError:
        return None
    messages = example.get("messages") if isinstance(example, dict) else None
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role") == "system":
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return content.strip() or None if isinstance(content, str) else None
    return None


class Trier:
    def __init__(self, store: Store, chat: Chat, nebius: NebiusClient) -> None:
        self.store = store
        self.chat = chat
        self.nebius = nebius

    async def target(self, name: str) -> TryTarget:
        """The model `name` means (a deployment's full name or a job id) and its base."""
        stored = await self.store.deployment_named(name)
        if stored is not None:
            base = stored.base_model or await self._deployed_base(name)
            return TryTarget(name, base, stored.system_prompt, stored.job_id)
        if JOB_ID.match(name):
            return await self._job_target(name)
        return TryTarget(name, await self._deployed_base(name), None, None)

    async def _deployed_base(self, name: str) -> str:
        try:
            deployment = await self.nebius.get_deployment(name)
        except NotFoundError:
            raise TryError(
                f"there is no custom model named `{name}`: `/finetune models` lists them "
                "(give the full name), or give a job id"
            ) from None
        if not deployment.base_model:
            raise TryError(f"Nebius does not say which base model `{name}` is built on")
        return deployment.base_model

    async def _job_target(self, job_id: str) -> TryTarget:
        job = await self.nebius.retrieve_job(job_id)
        active = [d for d in await self.store.job_deployments(job.id) if d.state == "active"]
        system = (
            await training_system_prompt(self.nebius, job.training_file)
            if job.training_file
            else None
        )
        if active and active[0].name:
            base = active[0].base_model or inference_base(job.model or "")
            return TryTarget(active[0].name, base, active[0].system_prompt or system, job.id)
        try:
            targets = await find_targets(self.nebius, job)
        except TargetError as error:
            raise TryError(str(error)) from None
        return TryTarget(targets.tuned.model, targets.base.model, system, job.id)

    # ------------------------------------------------------------------ the form

    async def open_form(
        self, trigger_id: str, full_name: str, *, channel: str, thread_ts: str | None
    ) -> Message | None:
        """Opens the Try it form (within Slack's 3 s); returns what to tell the clicker
        instead when there is no such model."""
        try:
            target = await asyncio.wait_for(self.target(full_name), FORM_LOOKUP_WAIT_S)
        except TryError as error:
            return note_message(f"Cannot try it: {error}.")
        except TimeoutError:
            return note_message("Nebius took too long to answer; click Try it again.")
        await self.chat.open_form(
            trigger_id,
            try_view(
                model=target.model,
                base_model=target.base,
                system_prompt=target.system_prompt,
                channel=channel,
                thread_ts=thread_ts,
            ),
        )
        return None

    def submitted(
        self, values: dict[str, dict[str, dict[str, Any]]], private_metadata: str, user: str
    ) -> tuple[dict[str, str], dict[str, Any] | None]:
        """Errors by block id, or none and what to ask (quick and without I/O)."""
        prompt = _value(values, "prompt")
        if not prompt:
            return {"prompt": "Write a prompt for both models to answer."}, None
        try:
            meta = json.loads(private_metadata or "{}")
        except ValueError:
            meta = {}
        if not meta.get("model") or not meta.get("base") or not meta.get("channel"):
            return {"prompt": "This form lost track of its model; click Try it again."}, None
        return {}, {
            "model": str(meta["model"]),
            "base": str(meta["base"]),
            "channel": str(meta["channel"]),
            "thread_ts": meta.get("thread_ts"),
            "prompt": prompt,
            "system": _value(values, "system"),
            "user": user,
        }

    def ask_from_form(self, asked: dict[str, Any]) -> Coroutine[Any, Any, None]:
        return self.ask(
            asked["model"],
            asked["base"],
            asked["prompt"],
            system=asked["system"],
            channel=asked["channel"],
            thread_ts=asked["thread_ts"],
            user=asked["user"],
        )

    # ------------------------------------------------------------------ asking

    async def ask(
        self,
        model: str,
        base: str,
        prompt: str,
        *,
        system: str | None,
        channel: str,
        thread_ts: str | None,
        user: str | None,
    ) -> None:
        """Both models answer at once; a model that fails says why in its own column."""
        messages = messages_for(prompt, system)
        answers = await asyncio.gather(
            self.nebius.chat_completion(model, messages, max_tokens=TRY_MAX_TOKENS),
            self.nebius.chat_completion(base, messages, max_tokens=TRY_MAX_TOKENS),
            return_exceptions=True,
        )
        texts = [_answer_text(a) for a in answers]
        await self.chat.post(
            channel,
            try_answers_message(
                user=user, prompt=prompt, tuned=(model, texts[0]), base=(base, texts[1])
            ),
            thread_ts=thread_ts,
        )


def _answer_text(answer: object) -> str:
    if isinstance(answer, NebiusError):
        return f":x: _no answer: {answer.message}_"
    if isinstance(answer, BaseException):
        log.error("a Try it answer failed", exc_info=answer)
        return ":x: _no answer: the request failed unexpectedly_"
    text = getattr(answer, "text", "")
    if getattr(answer, "finish_reason", None) == "length":
        text += f"\n_(cut off at {TRY_MAX_TOKENS} tokens)_"
    return text


def _value(values: dict[str, dict[str, dict[str, Any]]], block: str) -> str | None:
    state = (values.get(block) or {}).get("value") or {}
    value = state.get("value")
    return str(value).strip() or None if value is not None else None
