"""The comparison's messages: within Slack's limits whatever the models answered."""

from __future__ import annotations

from bot.blocks.compare import (
    CompareRun,
    compare_finished_message,
    compare_progress_message,
    compare_result_message,
)
from client.compare import Answer, CompareModel, CompareResult, ExampleRow, ModelSummary, ShapeInfo
from tests.bot.fake_slack import limits_problem

RUN = CompareRun(
    run_id="run1",
    job_id="ftjob-1",
    user="U1",
    base="base-model",
    tuned="tuned-model",
    how="deployment tuned-model (from ftjob-1:ftckpt-1)",
    source="val.jsonl",
    examples=3,
)
MODELS = [
    CompareModel(label="base", model="base-model"),
    CompareModel(label="fine-tuned", model="tuned-model"),
]


def result(answer: str, *, cancelled: bool = False) -> CompareResult:
    rows = [
        ExampleRow(
            line=n,
            question="Give me JSON " * 200,
            reference='{"a": 1}',
            answers={m.label: Answer(text=answer, chrf=10.0) for m in MODELS},
        )
        for n in (1, 2, 3)
    ]
    summaries = [
        ModelSummary(label=m.label, model=m.model, answered=3, errors=0, chrf=10.0) for m in MODELS
    ]
    return CompareResult(
        source="val.jsonl",
        models=MODELS,
        shape=ShapeInfo(kind="json", keys=["a"], description="JSON with the keys a"),
        rows=rows,
        summaries=summaries,
        total=3,
        completed=3,
        cancelled=cancelled,
    )


def code_texts(blocks: list[dict]) -> list[str]:
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    return [text for text in texts if text.startswith("```")]


def test_long_answers_with_fences_stay_in_their_code_blocks_and_within_slacks_limits() -> None:
    fenced = "```json\n" + '{"a": 1}\n' * 400 + "```"
    message = compare_result_message(RUN, result(fenced))
    payload = {"text": message.text, "blocks": message.blocks}
    assert limits_problem(payload) is None
    table, *examples = code_texts(message.blocks)
    assert len(examples) == 3
    for block in [table, *examples]:
        # Only the block's own fences: an answer's ``` would end the code block early.
        assert block.count("```") == 2 and block.startswith("```") and block.endswith("```")
        assert len(block) <= 3000


def test_the_progress_message_has_cancel_and_the_finished_one_does_not() -> None:
    progress = compare_progress_message(RUN, 4, 6)
    assert "4 of 6 answers (67%)" in progress.text
    (actions,) = [b for b in progress.blocks if b["type"] == "actions"]
    assert [e["value"] for e in actions["elements"]] == ["run1"]
    done = compare_finished_message(RUN, result("x", cancelled=True), cancelled_by="U2")
    assert "cancelled by <@U2> after 3 of 3 examples" in done.text
    assert all(b["type"] != "actions" for b in done.blocks)
