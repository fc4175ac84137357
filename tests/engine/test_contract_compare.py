"""`client.compare` against a live engine: a finished LoRA job on a tiny random model, its best
checkpoint found as the fine-tuned model, both models asked over real HTTP, answers scored; the
same greedy answers a second time; a model the engine does not have stops the run by name."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from client import NebiusClient
from client.compare import (
    CompareModel,
    CompareModelError,
    CompareOptions,
    find_targets,
    read_examples,
    render_table,
    run_compare,
)
from engine.server import EmbeddedEngine
from tests.engine.conftest import TINY, Api, lora_job

ANSWER = '{"enhanced_prompt": "a red fox in snow", "negative_prompt": "blur", "explanation": "x"}'


@pytest.fixture
async def client(chat_engine: EmbeddedEngine) -> AsyncIterator[NebiusClient]:
    async with NebiusClient("unused", chat_engine.base_url, max_retries=0) as nebius:
        yield nebius


def validation_file(folder: Path) -> Path:
    path = folder / "validation.jsonl"
    lines = [
        {
            "messages": [
                {"role": "system", "content": "Answer with JSON."},
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": ANSWER},
            ]
        }
        for prompt in ("fox", "a lighthouse", "rain on a window")
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


async def test_compare_runs_the_base_and_the_best_checkpoint_on_the_engine(
    chat_engine: EmbeddedEngine,
    client: NebiusClient,
    engine_dir: Path,
    tiny_model: Path,
    tmp_path: Path,
) -> None:
    with Api(chat_engine.base_url) as api:
        job_id = lora_job(api, engine_dir, tiny_model)["id"]
    job = await client.retrieve_job(job_id)
    targets = await find_targets(client, job)
    best = [c for c in await client.list_checkpoints(job_id) if c.id in targets.how]
    assert targets.base.model == TINY
    assert [targets.tuned.model] == [c.fine_tuned_model_checkpoint for c in best]

    examples = read_examples(validation_file(tmp_path))
    progress: list[tuple[int, int]] = []
    options = CompareOptions(concurrency=2, max_tokens=8)
    result = await run_compare(
        client, examples, targets.models, options=options, on_progress=lambda *p: progress.append(p)
    )

    assert progress[-1] == (6, 6) and not result.cancelled and result.completed == 3
    for summary in result.summaries:
        assert summary.errors == 0 and summary.answered == 3
        assert summary.shape_count is not None and summary.chrf is not None
        assert summary.mean_tokens is not None and 1 <= summary.mean_tokens <= 8
    base_answers = [row.answers["base"].text for row in result.rows]
    tuned_answers = [row.answers["fine-tuned"].text for row in result.rows]
    assert all(base_answers) and base_answers != tuned_answers  # the adapter changes answers
    assert "JSON object with enhanced_prompt, explanation, negative_prompt" in render_table(result)

    again = await run_compare(client, examples, targets.models, options=options)
    assert [row.answers["base"].text for row in again.rows] == base_answers  # greedy

    missing = [targets.base, CompareModel(label="fine-tuned", model="ft:tiny-llama:x:ftjob-none")]
    with pytest.raises(CompareModelError) as caught:
        await run_compare(client, examples, missing, options=options)
    assert caught.value.status_code == 404 and "ftjob-none" in caught.value.message
