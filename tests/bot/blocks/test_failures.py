"""Why a job failed, in plain words, with the likely fix: the engine's codes and Nebius's
messages, through one table."""

from __future__ import annotations

import pytest

from bot.blocks.failures import explain, explain_error, failure_text
from bot.blocks.jobs import job_card_message
from client import Job


def failed(code: str | None, message: str | None) -> Job:
    error = None if code is None and message is None else {"code": code, "message": message}
    return Job.model_validate({"id": "ftjob-1", "status": "failed", "error": error})


@pytest.mark.parametrize(
    ("code", "message", "words", "fix"),
    [
        ("out_of_memory", "ran out of memory", "ran out of memory", "smaller `batch_size`"),
        ("worker_killed", "killed (SIGKILL)", "was killed", "`context_length`"),
        ("model_not_found", "Model 'x' is not available", "not available", "/finetune models"),
        ("engine_restarted", "The engine stopped", "local engine stopped", "Retry"),
        ("worker_crashed", "exited with code 1", "stopped without finishing", "worker.log"),
        # Nebius: no documented codes; its words decide.
        (None, "CUDA out of memory. Tried to allocate 2 GiB", "ran out of memory", "`lora=true`"),
        ("", "Insufficient balance on the account", "no quota or credit", "Top up"),
        ("x", "Sequence length 9000 exceeds the maximum context", "longer than", "context_length"),
    ],
)
def test_each_known_failure_reads_in_plain_words_with_its_fix(
    code: str | None, message: str, words: str, fix: str
) -> None:
    explanation = explain_error(code, message)
    assert words in explanation.what
    assert fix in explanation.failure.fix


def test_a_bad_dataset_names_the_line_and_the_file() -> None:
    job = failed("bad_dataset", "train.jsonl: line 12: the last message must be the assistant's")
    explanation = explain(job)
    assert explanation is not None
    assert explanation.line == 12
    assert "line 12 of `train.jsonl`" in explanation.what
    assert "validate-jsonl" in explanation.failure.fix


def test_an_unknown_reason_and_no_reason_still_say_what_to_do() -> None:
    unknown = explain_error("weird_code", "the flux capacitor broke")
    assert unknown.failure.key == "unknown" and "Retry" in unknown.failure.fix
    none = explain(failed(None, None))
    assert none is not None and none.failure.key == "no_reason"


def test_only_a_failed_job_is_explained() -> None:
    for status in ("succeeded", "cancelled", "running"):
        assert failure_text(Job.model_validate({"id": "j", "status": status})) is None


def test_a_failed_jobs_card_gives_the_reason_and_fix_and_offers_retry() -> None:
    card = job_card_message(failed("out_of_memory", "training ran out of memory"))
    text = str(card.blocks)
    assert "*Why:* Training ran out of memory." in text
    assert "*Fix:* Retry with a smaller `batch_size`" in text
    actions = [e["action_id"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert "retry_job" in actions and "edit_and_retry_job" in actions
    assert "show_loss_chart" in actions


def test_a_cancelled_card_offers_retry_without_a_reason_and_a_running_one_neither() -> None:
    cancelled = job_card_message(Job.model_validate({"id": "j", "status": "cancelled"}))
    assert "*Why:*" not in str(cancelled.blocks) and "retry_job" in str(cancelled.blocks)
    running = job_card_message(Job.model_validate({"id": "j", "status": "running"}))
    assert "retry_job" not in str(running.blocks)
