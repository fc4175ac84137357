"""Chat completions: OpenAI's shape whole (the answer Nebius's cookbook printed) or streamed as
server-sent events, a server that ignores `stream`, and errors in the middle of a stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from client import NebiusClient
from client.chat import messages_for, sse_data
from client.constants import CHAT_TIMEOUT_S, CONNECT_TIMEOUT_S, DEFAULT_TIMEOUT_S
from client.errors import NebiusError
from tests.client.conftest import FakeTime

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:my-finetuned-model-JuNN"
# post-training/fine-tuning-1/fine_tune_llama.ipynb, step 10.
COOKBOOK_ANSWER = {
    "id": "chatcmpl-649d3439e2094d8384ab2e941c408aff",
    "choices": [
        {
            "finish_reason": "stop",
            "index": 0,
            "logprobs": None,
            "message": {
                "content": "Hello",
                "refusal": None,
                "role": "assistant",
                "annotations": None,
                "audio": None,
                "function_call": None,
                "tool_calls": [],
                "reasoning_content": None,
            },
            "stop_reason": None,
        }
    ],
    "created": 1765431413,
    "model": MODEL,
    "object": "chat.completion",
    "service_tier": None,
    "system_fingerprint": None,
    "usage": {"completion_tokens": 2, "prompt_tokens": 41, "total_tokens": 43},
    "prompt_logprobs": None,
}


def sse(*events: object) -> bytes:
    lines = [": keep-alive\n\n"]
    for event in events:
        payload = event if isinstance(event, str) else json.dumps(event)
        lines.append(f"data: {payload}\n\n")
    return "".join(lines).encode()


def chunk(text: str | None, finish: str | None = None) -> dict[str, object]:
    delta = {} if text is None else {"content": text}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def collect(client: NebiusClient, **options: object) -> list[str]:
    messages = messages_for("Hello")
    return [c.text async for c in client.stream_chat_completion(MODEL, messages, **options)]


async def test_a_completion_sends_openai_s_shape_and_reads_the_answer(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    route = api.post("chat/completions").respond(json=COOKBOOK_ANSWER)
    completion = await client.chat_completion(
        MODEL, messages_for("Hello!", "You are helpful"), temperature=0.2, max_tokens=64
    )
    assert json.loads(route.calls.last.request.content) == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are helpful"},
            {"role": "user", "content": "Hello!"},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
    }
    assert (completion.text, completion.finish_reason, completion.model) == ("Hello", "stop", MODEL)
    assert completion.usage is not None and completion.usage.total_tokens == 43


async def test_a_chat_waits_minutes_for_its_answer_where_other_calls_wait_a_minute(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    # A long answer on a busy server (a batch of compare prompts on a laptop CPU) comes whole
    # only once generated: the client's 60 s would give up and send it again, doubling the work.
    chat = api.post("chat/completions").respond(json=COOKBOOK_ANSWER)
    api.get("models").respond(json={"object": "list", "data": []})
    await client.chat_completion(MODEL, messages_for("Hello"))
    await client.list_models()
    chat_wait = chat.calls.last.request.extensions["timeout"]
    other_wait = api.calls.last.request.extensions["timeout"]
    assert chat_wait["read"] == CHAT_TIMEOUT_S and chat_wait["connect"] == CONNECT_TIMEOUT_S
    assert other_wait["read"] == DEFAULT_TIMEOUT_S


async def test_a_rate_limited_chat_is_sent_again_after_retry_after(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    api.post("chat/completions").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}, json={"detail": "slow down"}),
            httpx.Response(200, json=COOKBOOK_ANSWER),
        ]
    )
    completion = await client.chat_completion(MODEL, messages_for("Hello"))
    assert completion.text == "Hello" and fake_time.sleeps == [3.0]


async def test_a_streamed_answer_comes_token_by_token(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    body = sse(chunk(None), chunk("Hel"), chunk("lo"), chunk("!", "stop"), "[DONE]")
    route = api.post("chat/completions").respond(
        content=body, headers={"Content-Type": "text/event-stream; charset=utf-8"}
    )
    assert await collect(client, temperature=0) == ["", "Hel", "lo", "!"]
    sent = json.loads(route.calls.last.request.content)
    assert sent["stream"] is True and sent["temperature"] == 0


async def test_a_server_that_ignores_stream_gives_the_whole_answer_at_once(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.post("chat/completions").respond(json=COOKBOOK_ANSWER)
    assert await collect(client) == ["Hello"]


async def test_an_error_in_the_middle_of_a_stream_is_a_clear_error(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    body = sse(chunk("Hel"), {"error": {"message": "the model went away", "code": "gone"}})
    api.post("chat/completions").respond(
        content=body, headers={"Content-Type": "text/event-stream"}
    )
    with pytest.raises(NebiusError) as caught:
        await collect(client)
    assert "the model went away" in caught.value.message and caught.value.code == "gone"


async def test_a_stream_event_that_is_not_json_is_named(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.post("chat/completions").respond(
        content=b"data: {oops\n\n", headers={"Content-Type": "text/event-stream"}
    )
    with pytest.raises(NebiusError, match=r"not JSON: \{oops"):
        await collect(client)


async def test_sse_events_may_span_lines_and_end_without_done() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in ["event: message", 'data: {"a":', "data: 1}", "", "id: 2", 'data: {"b": 2}']:
            yield line

    assert [event async for event in sse_data(lines())] == [{"a": 1}, {"b": 2}]
