"""client.compare against a mocked Nebius: examples from a chat JSONL, both models asked with
bounded concurrency, scoring (shape, chrF, length), progress, cancellation, errors, renderers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from client import NebiusClient
from client.compare import (
    BLOCK_MAX_CHARS,
    CompareDataError,
    CompareModel,
    CompareModelError,
    CompareOptions,
    TargetError,
    find_targets,
    read_examples,
    reference_shape,
    render_examples,
    render_table,
    run_compare,
    sentence_chrf,
)
from client.compare.render import LINE_WIDTH
from client.deployments import Deployment
from client.models import Checkpoint, Job

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "sample_validation_data.jsonl"
BASE = CompareModel(label="base", model="org/base-model")
TUNED = CompareModel(label="fine-tuned", model="org/base-model-LoRa:xgen-AbCd")
MODELS = [BASE, TUNED]


def completion(text: str, tokens: int | None = None, finish: str = "stop") -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
    }
    if tokens is not None:
        body["usage"] = {
            "prompt_tokens": 50,
            "completion_tokens": tokens,
            "total_tokens": 50 + tokens,
        }
    return body


class Models:
    """A chat endpoint: the fine-tuned model answers each prompt's reference, the base model
    answers in prose; records every request."""

    def __init__(self, examples: list[Any]) -> None:
        self.by_prompt = {json.dumps(e.prompt): e.reference for e in examples}
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        reference = self.by_prompt[json.dumps(body["messages"])]
        if body["model"] == TUNED.model:
            return httpx.Response(200, json=completion(reference, tokens=len(reference) // 4))
        return httpx.Response(200, json=completion("Here is a better prompt: a photo.", 9))


@pytest.fixture
def examples() -> list[Any]:
    return read_examples(SAMPLES)


def test_examples_are_the_messages_before_the_last_answer_which_is_the_reference(
    examples: list[Any],
) -> None:
    assert len(examples) == 5
    first = json.loads(SAMPLES.read_text().splitlines()[0])["messages"]
    assert examples[0].line == 1
    assert examples[0].prompt == [{"role": m["role"], "content": m["content"]} for m in first[:-1]]
    assert examples[0].reference == first[-1]["content"]
    assert examples[0].question == "lighthouse in a storm"
    assert len(read_examples(SAMPLES, limit=2)) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "data.jsonl:3: not valid JSON"),
        ('{"prompt": "a", "completion": "b"}', "compare needs the chat format"),
        (
            '{"messages": [{"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "yo"}, {"role": "user", "content": "and?"}]}',
            "data.jsonl:3 (messages[2].role): the last message must be from the assistant",
        ),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    good = SAMPLES.read_text().splitlines()[0]
    path = tmp_path / "data.jsonl"
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(CompareDataError) as caught:
        read_examples(path)
    assert message in str(caught.value)


def test_the_shape_is_the_keys_every_json_reference_has() -> None:
    xgen = reference_shape(
        [
            '{"enhanced_prompt": "a", "negative_prompt": "b", "explanation": "c"}',
            '{"enhanced_prompt": "d", "negative_prompt": "e", "explanation": "f", "seed": 1}',
        ]
    )
    assert xgen.keys == ("enhanced_prompt", "explanation", "negative_prompt")
    assert xgen.matches(
        ' {"enhanced_prompt": "x", "negative_prompt": "", "explanation": "", "k": 1}'
    )
    assert not xgen.matches('{"enhanced_prompt": "x", "negative_prompt": "y"}')  # a key missing
    assert not xgen.matches('Sure! {"enhanced_prompt": "x"}')
    fenced = '```json\n{"enhanced_prompt": "x", "negative_prompt": "y", "explanation": "z"}\n```'
    assert not xgen.matches(fenced) and xgen.matches_fenced(fenced)

    arrays = reference_shape(["[1, 2]", '{"a": 1}'])
    assert arrays.kind == "json" and arrays.matches("42") and not arrays.matches("forty-two")
    prose = reference_shape(["A cat on a mat.", '{"a": 1}'])
    assert not prose.scored and not prose.matches('{"a": 1}')
    assert "not scored" in prose.describe()


async def test_both_models_are_scored_against_the_references(
    client: NebiusClient, api: respx.MockRouter, examples: list[Any]
) -> None:
    models = Models(examples)
    api.post("chat/completions").mock(side_effect=models)

    result = await run_compare(client, examples, MODELS, source="val.jsonl")

    assert len(models.requests) == 10 and not result.cancelled and result.completed == 5
    for body in models.requests:
        assert body["temperature"] == 0
        assert body["messages"][-1]["role"] == "user"  # the reference is never sent
        # bounded by the reference's length: about twice its tokens, never unbounded
        reference = models.by_prompt[json.dumps(body["messages"])]
        assert len(reference) // 4 < body["max_tokens"] <= len(reference)
    base, tuned = result.summaries
    assert (tuned.chrf, tuned.chrf_mean) == (100.0, 100.0)  # exact matches
    assert (tuned.shape_count, tuned.shape_share) == (5, 1.0)
    assert (base.shape_count, base.shape_share) == (0, 0.0)
    assert base.chrf is not None and base.chrf < 20
    assert base.mean_chars == len("Here is a better prompt: a photo.") and base.mean_tokens == 9
    assert tuned.mean_chars == pytest.approx(sum(len(e.reference) for e in examples) / 5)
    assert result.shape.keys == ["enhanced_prompt", "explanation", "negative_prompt"]
    row = result.rows[0]
    assert row.answers["fine-tuned"].has_shape and not row.answers["base"].has_shape

    table = render_table(result)
    assert "Compare on 5 examples of val.jsonl" in table
    assert "5/5 100%" in table and "0/5 0%" in table
    assert TUNED.model in table and "JSON object with enhanced_prompt" in table


def test_chrf_is_100_for_the_same_text_and_lower_for_a_different_one() -> None:
    assert sentence_chrf("a misty forest at dawn", "a misty forest at dawn") == 100.0
    assert 0 < sentence_chrf("a misty forest", "a misty forest at dawn") < 100
    assert sentence_chrf("", "a misty forest at dawn") == 0.0


async def test_prose_references_are_not_scored_for_shape(
    client: NebiusClient, api: respx.MockRouter, tmp_path: Path
) -> None:
    path = tmp_path / "prose.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "A"}]}
        for i in range(2)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    api.post("chat/completions").respond(json=completion("A"))

    result = await run_compare(client, read_examples(path), MODELS)

    assert all(s.shape_share is None for s in result.summaries)
    assert "shape: not scored" in render_table(result)


async def test_requests_run_at_most_concurrency_at_a_time(
    client: NebiusClient, api: respx.MockRouter, examples: list[Any]
) -> None:
    in_flight = peak = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)  # let the other workers start theirs
        await asyncio.sleep(0)
        in_flight -= 1
        return httpx.Response(200, json=completion("x"))

    api.post("chat/completions").mock(side_effect=answer)
    for concurrency in (1, 3):
        peak = 0
        await run_compare(client, examples, MODELS, options=CompareOptions(concurrency))
        assert peak == concurrency


async def test_progress_counts_every_answer_and_may_be_a_coroutine(
    client: NebiusClient, api: respx.MockRouter, examples: list[Any]
) -> None:
    api.post("chat/completions").mock(side_effect=Models(examples))
    seen: list[tuple[int, int]] = []

    async def progress(done: int, total: int) -> None:
        seen.append((done, total))

    await run_compare(client, examples[:3], MODELS, on_progress=progress)
    assert seen == [(n, 6) for n in range(1, 7)]


async def test_a_cancelled_run_keeps_the_answers_so_far_and_says_so(
    client: NebiusClient, api: respx.MockRouter, examples: list[Any]
) -> None:
    never = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["model"] == TUNED.model and body["messages"] == examples[1].prompt:
            await never.wait()  # in flight when the run is cancelled: it must be dropped
        await asyncio.sleep(0)  # both workers' requests are in flight together
        return httpx.Response(200, json=completion('{"enhanced_prompt": "x"}'))

    api.post("chat/completions").mock(side_effect=answer)
    cancel = asyncio.Event()

    def progress(done: int, total: int) -> None:
        if done == 3:
            cancel.set()

    result = await asyncio.wait_for(
        run_compare(
            client,
            examples,
            MODELS,
            options=CompareOptions(concurrency=2),
            on_progress=progress,
            cancel=cancel,
        ),
        timeout=10,  # a guard: a run that ignored the cancel would hang here
    )

    assert result.cancelled and result.partial
    assert result.completed == 1  # example 1 has both answers, example 2 only one
    assert [len(row.answers) for row in result.rows] == [2, 1, 0, 0, 0]
    assert all(s.answered == 1 for s in result.summaries)
    assert "cancelled" in render_table(result)
    assert "1 of 5 examples" in render_table(result)
    assert len(render_examples(result)) == 1


async def test_a_model_that_does_not_exist_stops_the_run_naming_it(
    client: NebiusClient, api: respx.MockRouter, examples: list[Any]
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["model"] == TUNED.model:
            return httpx.Response(
                404,
                json={"error": {"message": "The model does not exist", "code": "model_not_found"}},
            )
        return httpx.Response(200, json=completion("x"))

    route = api.post("chat/completions").mock(side_effect=answer)
    with pytest.raises(CompareModelError) as caught:
        await run_compare(client, examples, MODELS)
    assert caught.value.status_code == 404
    assert f"the fine-tuned model {TUNED.model!r} cannot be used" in caught.value.message
    assert "does not exist" in caught.value.message
    assert route.call_count < 10  # stopped, not run to the end


async def test_one_failed_completion_is_an_empty_answer_with_its_error(
    client: NebiusClient, api: respx.MockRouter, examples: list[Any]
) -> None:
    models = Models(examples)

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["model"] == TUNED.model and body["messages"] == examples[1].prompt:
            return httpx.Response(400, json={"error": {"message": "prompt is too long"}})
        return models(request)

    api.post("chat/completions").mock(side_effect=answer)
    result = await run_compare(client, examples, MODELS)

    failed = result.rows[1].answers["fine-tuned"]
    assert failed.text == "" and failed.chrf == 0.0 and "prompt is too long" in (failed.error or "")
    tuned = result.summaries[1]
    assert (tuned.errors, tuned.answered, tuned.shape_count) == (1, 5, 4)
    assert "(error: 400 prompt is too long" in render_examples(result)[1]


async def test_renderers_stay_within_a_slack_block_with_long_answers_and_names(
    client: NebiusClient, api: respx.MockRouter, examples: list[Any]
) -> None:
    long_text = "word " * 2000
    api.post("chat/completions").respond(json=completion(long_text, finish="length"))
    long_models = [
        CompareModel(label="base-" + "b" * 60, model="org/" + "m" * 300),
        CompareModel(label="fine-tuned", model="org/" + "n" * 300 + "-LoRa:x-AbCd"),
    ]
    result = await run_compare(client, examples, long_models)

    table = render_table(result)
    assert len(table) <= BLOCK_MAX_CHARS
    assert all(len(line) <= LINE_WIDTH for line in table.splitlines())
    blocks = render_examples(result, 5)
    assert len(blocks) == 5
    for block in blocks:
        assert len(block) <= BLOCK_MAX_CHARS
        assert all(len(line) <= LINE_WIDTH for line in block.splitlines())
        assert "more characters)" in block and "cut at max tokens" in block


class Targets:
    def __init__(self, checkpoints: list[Checkpoint], deployments: list[Deployment]) -> None:
        self.checkpoints = checkpoints
        self.deployments = deployments

    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        return self.checkpoints

    async def list_deployments(self) -> list[Deployment]:
        return self.deployments


def checkpoint(cid: str, step: int, loss: float, name: str | None = None) -> Checkpoint:
    return Checkpoint(
        id=cid, step_number=step, metrics={"valid_loss": loss}, fine_tuned_model_checkpoint=name
    )


async def test_on_the_local_engine_the_best_checkpoint_is_the_fine_tuned_model() -> None:
    job = Job(id="ftjob-1", model="tiny", status="succeeded", fine_tuned_model="ft:tiny:ftjob-1")
    points = [checkpoint("c1", 10, 0.9, "ft:tiny:ftjob-1:ckpt-10"), checkpoint("c2", 20, 1.1, "b")]

    chosen = await find_targets(Targets(points, []), job)
    assert (chosen.base.model, chosen.tuned.model) == ("tiny", "ft:tiny:ftjob-1:ckpt-10")
    assert "best checkpoint: step 10" in chosen.how
    later = await find_targets(Targets(points, []), job, checkpoint="20")
    assert later.tuned.model == "b"
    assert (await find_targets(Targets([], []), job)).tuned.model == "ft:tiny:ftjob-1"


async def test_on_nebius_the_jobs_active_deployment_is_found() -> None:
    job = Job(id="ftjob-1", model="meta-llama/Llama-3.1-8B-Instruct", status="succeeded")
    points = [checkpoint("c1", 10, 0.9, "ftjob-1:c1"), checkpoint("c2", 20, 1.1, "ftjob-1:c2")]
    deployments = [
        Deployment(name="other-LoRa:x", source="ftjob-2:c1", status="active"),
        Deployment(name="L-LoRa:last", source="ftjob-1:c2", status="active", created_at=2),
        Deployment(
            name="L-LoRa:best",
            source="ftjob-1:c1",
            status="active",
            created_at=1,
            base_model="meta-llama/Meta-Llama-3.1-8B-Instruct",
        ),
    ]
    chosen = await find_targets(Targets(points, deployments), job)
    assert chosen.tuned.model == "L-LoRa:best"  # the best checkpoint's, not the newest
    assert chosen.base.model == "meta-llama/Meta-Llama-3.1-8B-Instruct"
    given = await find_targets(Targets(points, deployments), job, model="mine", base_model="b")
    assert (given.base.model, given.tuned.model) == ("b", "mine")

    with pytest.raises(TargetError, match="finetune deploy ftjob-1"):
        await find_targets(Targets(points, deployments[:1]), job)
    waiting = [Deployment(name="L-LoRa:v", source="ftjob-1:c1", status="validating")]
    with pytest.raises(TargetError, match=r"still validating.*finetune deployments L-LoRa:v"):
        await find_targets(Targets(points, waiting), job)
