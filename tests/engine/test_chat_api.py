"""`POST /v1/chat/completions` through the openai SDK, on a tiny random model."""

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from engine.chat_api import MAX_TOKENS_CAP
from engine.server import EmbeddedEngine
from tests.engine.conftest import HELLO, TINY, WAIT_S, Api, lora_job, wait_for


@pytest.fixture
def sdk(chat_engine: EmbeddedEngine) -> Iterator[OpenAI]:
    with OpenAI(base_url=chat_engine.base_url, api_key="unused", max_retries=0) as client:
        yield client


def ask(sdk: OpenAI, **options: Any) -> Any:
    options.setdefault("model", TINY)
    options.setdefault("messages", HELLO)
    options.setdefault("max_tokens", 6)
    return sdk.chat.completions.create(**options)


def test_a_completion_comes_in_openai_shape_and_temperature_0_repeats_itself(
    sdk: OpenAI,
) -> None:
    first = ask(sdk, temperature=0)
    second = ask(sdk, temperature=0)

    assert first.object == "chat.completion"
    assert first.id.startswith("chatcmpl-") and first.id != second.id
    assert first.model == TINY
    [choice] = first.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == second.choices[0].message.content
    # A random model rarely ends its turn within 6 tokens; either way the usage adds up.
    assert choice.finish_reason in ("stop", "length")
    usage = first.usage
    assert usage.prompt_tokens > 0 and 1 <= usage.completion_tokens <= 6
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    if choice.finish_reason == "length":
        assert usage.completion_tokens == 6


def test_streaming_sends_the_same_answer_as_chunks_then_usage_and_done(
    sdk: OpenAI, chat_api: Api
) -> None:
    whole = ask(sdk, temperature=0, max_tokens=8)
    chunks = list(
        ask(sdk, temperature=0, max_tokens=8, stream=True, stream_options={"include_usage": True})
    )

    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finishing] == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])

    body = {"model": TINY, "messages": HELLO, "max_tokens": 3, "stream": True}
    with chat_api.http.stream("POST", "chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    # Without include_usage no chunk carries usage.
    assert all("usage" not in e for e in events)


def test_the_same_seed_samples_the_same_answer(sdk: OpenAI) -> None:
    first = ask(sdk, temperature=1.0, seed=1234, max_tokens=12)
    again = ask(sdk, temperature=1.0, seed=1234, max_tokens=12)
    assert first.choices[0].message.content == again.choices[0].message.content


def test_a_stop_string_ends_the_answer_before_it(sdk: OpenAI) -> None:
    sampled = ask(sdk, temperature=1.0, seed=99, max_tokens=16).choices[0].message.content
    stop = next(ch for ch in sampled[2:] if ch != "\ufffd")
    cut = ask(sdk, temperature=1.0, seed=99, max_tokens=16, stop=[stop])
    assert cut.choices[0].message.content == sampled[: sampled.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = ask(sdk, temperature=1.0, seed=99, max_tokens=16, stop=stop, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == sampled[: sampled.index(stop)]


def test_an_unknown_model_is_a_404_in_the_error_shape(sdk: OpenAI, chat_api: Api) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        ask(sdk, model="nobody/nothing")
    assert "nobody/nothing" in caught.value.message
    for model in ("nobody/nothing", "ft:tiny-llama:x:ftjob-missing", "tiny-llama-LoRa:x-abcd"):
        response = chat_api.http.post("chat/completions", json={"model": model, "messages": HELLO})
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["param"] == "model" and error["code"] == "model_not_found"
        with pytest.raises(openai.NotFoundError):
            ask(sdk, model=model, stream=True)


@pytest.mark.parametrize(
    ("change", "param", "words"),
    [
        ({"messages": []}, "messages", "at least 1"),
        ({"messages": None}, "messages", "list"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role", "'user'"),
        ({"messages": [{"role": "user"}]}, "messages.0.content", "required"),
        ({"temperature": 2.5}, "temperature", "2"),
        ({"temperature": -0.1}, "temperature", "0"),
        ({"top_p": 0}, "top_p", "greater than 0"),
        ({"top_p": 1.5}, "top_p", "1"),
        ({"max_tokens": MAX_TOKENS_CAP + 1}, "max_tokens", str(MAX_TOKENS_CAP)),
        ({"max_tokens": 0}, "max_tokens", "1"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"n": 2}, "n", "1"),
        ({"model": ""}, "model", "at least 1"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    chat_api: Api, change: dict[str, Any], param: str, words: str
) -> None:
    body = {"model": TINY, "messages": HELLO, **change}
    response = chat_api.http.post("chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert f"'{param}'" in error["message"] and words in error["message"]


def test_a_prompt_longer_than_the_context_is_a_400(chat_api: Api) -> None:
    long = [{"role": "user", "content": "x" * 2000}]  # one token per byte; context 1024
    response = chat_api.http.post("chat/completions", json={"model": TINY, "messages": long})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"
    assert "1,024" in response.json()["error"]["message"]


def test_a_jobs_fine_tuned_model_answers_with_its_adapter_merged(
    sdk: OpenAI, chat_api: Api, engine_dir: Path, tiny_model: Path
) -> None:
    job = lora_job(chat_api, engine_dir, tiny_model)
    base = ask(sdk, temperature=0, max_tokens=8).choices[0].message.content
    tuned = ask(sdk, model=job["fine_tuned_model"], temperature=0, max_tokens=8)
    assert tuned.model == job["fine_tuned_model"]
    assert tuned.choices[0].message.content != base
    checkpoints = chat_api.http.get(f"fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
    first = min(checkpoints, key=lambda c: c["step_number"])
    early = ask(sdk, model=first["fine_tuned_model_checkpoint"], temperature=0, max_tokens=8)
    assert early.choices[0].message.content not in (base, tuned.choices[0].message.content)


def test_a_model_that_cannot_be_loaded_is_a_clear_400(
    engine_dir: Path, tiny_model: Path, sdk: OpenAI, chat_api: Api
) -> None:
    # The fake worker's checkpoint files are not a real adapter.
    created = chat_api.create_job(
        model=TINY, training_file=chat_api.processed()["id"], hyperparameters={"lora": True}
    ).json()
    job = chat_api.wait_status(created["id"], "succeeded")
    with pytest.raises(openai.BadRequestError) as caught:
        ask(sdk, model=job["fine_tuned_model"])
    assert "could not be loaded" in caught.value.message
    assert str(engine_dir) not in caught.value.message


def test_a_client_that_hangs_up_on_a_whole_answer_stops_its_generation(
    chat_engine: EmbeddedEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    inference = chat_engine._server.config.app.app.state.engine.inference
    started: list[Any] = []
    submit = inference.submit
    monkeypatch.setattr(
        inference, "submit", lambda *a, **k: started.append(submit(*a, **k)) or started[-1]
    )
    gate = threading.Event()
    # The inference thread is held until the client has given up: nothing is decoded yet.
    holding = inference.queue(gate.wait, WAIT_S)
    body = {"model": TINY, "messages": HELLO, "max_tokens": MAX_TOKENS_CAP, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{chat_engine.base_url}/chat/completions", json=body, timeout=0.5)
    gate.set()

    result = wait_for(lambda: started and started[0].done() and started[0].result(), "the end")
    assert result.completion_tokens <= 1  # not the ~1,000 tokens it would have gone on for
    assert holding.result() is True
