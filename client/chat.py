"""Chat completions in OpenAI's shape (`POST chat/completions`), whole or streamed.

`model` is a base model or a deployment's full name. A streamed answer comes as server-sent
events: `data: {chunk}` lines, each with `choices[].delta.content`, ended by `data: [DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field

from client.models import NebiusObject


class ChatMessage(NebiusObject):
    role: str
    # OpenAI allows a list of parts ([{"type": "text", "text": ...}]); answers carry a string.
    content: str | list[Any] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(
                str(part.get("text", "")) for part in self.content if isinstance(part, dict)
            )
        return self.content or ""


class ChatChoice(NebiusObject):
    index: int = 0
    message: ChatMessage | None = None
    finish_reason: str | None = None


class ChatUsage(NebiusObject):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class ChatCompletion(NebiusObject):
    id: str | None = None
    object: str = "chat.completion"
    created: int | None = None
    model: str | None = None
    choices: list[ChatChoice] = Field(default_factory=list)
    usage: ChatUsage | None = None

    @property
    def text(self) -> str:
        """The first choice's answer ("" when there is none)."""
        first = self.choices[0] if self.choices else None
        return first.message.text if first and first.message else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None


class ChatDelta(NebiusObject):
    role: str | None = None
    content: str | None = None


class ChatChunkChoice(NebiusObject):
    index: int = 0
    delta: ChatDelta = Field(default_factory=ChatDelta)
    finish_reason: str | None = None


class ChatChunk(NebiusObject):
    """One event of a streamed answer."""

    id: str | None = None
    object: str = "chat.completion.chunk"
    model: str | None = None
    choices: list[ChatChunkChoice] = Field(default_factory=list)
    usage: ChatUsage | None = None

    @property
    def text(self) -> str:
        return "".join(c.delta.content or "" for c in self.choices if c.index == 0)


def messages_for(prompt: str, system: str | None = None) -> list[dict[str, str]]:
    """A one-turn conversation, with a system message first when given."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": prompt}]


class SSEError(ValueError):
    """A stream event whose data is not JSON."""


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON payloads of server-sent events, until `[DONE]` or the end of the stream.

    An event's data may span several `data:` lines (joined with newlines); comments (`:`)
    and other fields (`event:`, `id:`, `retry:`) carry nothing for chat."""
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if line:
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            continue
        if not data:
            continue
        payload, data = "\n".join(data), []
        if payload.strip() == "[DONE]":
            return
        yield _event(payload)
    if data and "\n".join(data).strip() != "[DONE]":
        yield _event("\n".join(data))


def _event(payload: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        raise SSEError(f"a streamed event is not JSON: {payload[:200]}") from None
    if not isinstance(value, dict):
        raise SSEError(f"a streamed event is not a JSON object: {payload[:200]}")
    return value
