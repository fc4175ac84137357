"""What each worker protocol line does to its job: the fields it sets and the events it adds."""

from pathlib import Path

from engine import worker_messages as messages
from engine.model_registry import Lineage
from engine.worker_messages import REASON_CHARS, REDACTED, Event, Update, scrub

JOB_ID = "ftjob-abc"
JOB = {"id": JOB_ID, "model": "tiny-llama", "suffix": "cats"}
STARTED = {
    "type": "started",
    "device": "cpu",
    "dtype": "float32",
    "model": "tiny-llama",
    "trainable_parameters": 12_345,
    "total_parameters": 1_234_567,
    "total_steps": 40,
    "epochs": 2,
    "resumed_from_step": None,
}
PROGRESS = {
    "type": "progress",
    "step": 3,
    "total_steps": 40,
    "epoch": 1,
    "loss": 1.923456,
    "learning_rate": 1e-05,
    "tokens_per_second": 1234.56,
    "trained_tokens": 600,
    "eta_seconds": 125.0,
}


def test_progress_sets_the_counts_and_the_estimated_finish_and_says_the_step() -> None:
    update = messages.progress(PROGRESS, clock=1_700_000_000.5)
    assert update.changes == {
        "trained_steps": 3,
        "total_steps": 40,
        "trained_tokens": 600,
        "estimated_finish": 1_700_000_125,
    }
    assert update.events == [
        Event(
            "Step 3/40: loss 1.923, learning rate 1e-05, 1,234.6 tokens/s, about 2m 05s left.",
            type="metrics",
            data=PROGRESS,
        )
    ]


def test_progress_without_an_estimate_says_nothing_of_time_left() -> None:
    update = messages.progress({**PROGRESS, "eta_seconds": None, "loss": None}, clock=0.0)
    assert update.changes["estimated_finish"] is None
    assert update.events[0].message == (
        "Step 3/40: loss n/a, learning rate 1e-05, 1,234.6 tokens/s."
    )


def test_time_left_reads_in_seconds_minutes_or_hours() -> None:
    def left(eta: float) -> str:
        return messages.progress({**PROGRESS, "eta_seconds": eta}, 0.0).events[0].message

    assert left(42).endswith("about 42s left.")
    assert left(-5).endswith("about 0s left.")
    assert left(3 * 3600 + 7 * 60).endswith("about 3h 07m left.")


def test_started_sets_the_total_and_describes_the_run() -> None:
    update = messages.started(STARTED, None)
    assert update.changes == {"total_steps": 40}
    assert update.events == [
        Event(
            "Training started on cpu (float32): tiny-llama, 12,345 of 1,234,567 parameters "
            "trained, 40 steps over 2 epoch(s).",
            data=STARTED,
        )
    ]


def test_started_on_a_fine_tuned_model_names_its_lineage_and_a_resume() -> None:
    lineage = Lineage(
        base_model="tiny-llama",
        load="tiny-llama",
        adapters=[Path("/data/jobs/ftjob-1/checkpoints/step-4")],
        parents=["ft:tiny-llama:engine:ftjob-1"],
    )
    update = messages.started({**STARTED, "resumed_from_step": 20}, lineage)
    event = update.events[0]
    assert event.message == (
        "Training started on cpu (float32): tiny-llama (from tiny-llama, 1 LoRA adapter(s) "
        "merged), 12,345 of 1,234,567 parameters trained, 40 steps over 2 epoch(s), "
        "resumed from step 20."
    )
    # Model ids only: no server path reaches the event.
    assert event.data["parents"] == ["ft:tiny-llama:engine:ftjob-1"]
    assert event.data["merged_adapters"] == 1
    assert "/data/jobs" not in str(event.data)


def test_a_dataset_with_truncated_examples_adds_a_warning() -> None:
    line = {
        "type": "dataset",
        "examples": 1200,
        "validation_examples": 30,
        "tokens": 456_789,
        "truncated": 2,
        "dropped": 1,
        "context_length": 2048,
        "message": "longest example: 9000 tokens",
    }
    update = messages.dataset(line)
    assert update.changes == {}
    assert [e.message for e in update.events] == [
        "Dataset tokenized: 1,200 training examples (30 validation), 456,789 tokens.",
        "2 example(s) truncated and 1 dropped at the context length of 2048 tokens. "
        "longest example: 9000 tokens",
    ]
    assert update.events[1].level == "warn"
    assert update.events[1].data == {"truncated": 2, "dropped": 1, "context_length": 2048}
    assert len(messages.dataset({**line, "truncated": 0, "dropped": 0}).events) == 1


def test_an_epoch_reports_its_losses() -> None:
    line = {"type": "epoch", "epoch": 1, "step": 20, "train_loss": 1.5, "valid_loss": 1.25}
    assert messages.epoch(line).events[0].message == (
        "Epoch 1 finished at step 20: train loss 1.5, validation loss 1.25."
    )
    no_valid = messages.epoch({**line, "valid_loss": None}).events[0]
    assert no_valid.message == "Epoch 1 finished at step 20: train loss 1.5."
    assert no_valid.type == "metrics"


def test_a_notice_keeps_its_level_and_is_cut_short() -> None:
    warn = messages.notice({"type": "notice", "level": "warn", "message": "W&B is offline"})
    assert warn == Update(events=[Event("W&B is offline", level="warn")])
    odd = messages.notice({"type": "notice", "level": "shout", "message": "y" * 900})
    assert odd.events[0].level == "info"
    assert len(odd.events[0].message) == REASON_CHARS


def test_a_checkpoint_becomes_a_contract_checkpoint_and_an_event() -> None:
    line = {
        "type": "checkpoint",
        "step": 20,
        "epoch": 1,
        "path": "/data/jobs/ftjob-abc/checkpoints/step-20",
        "files": ["adapter_model.safetensors", "adapter_config.json"],
        "metrics": {"train_loss": 1.5, "valid_loss": None},
    }
    record, event = messages.checkpoint(
        line, JOB_ID, JOB, ["file-1", "file-2"], checkpoint_id="ftckpt-1", created_at=1234
    )
    assert record == {
        "id": "ftckpt-1",
        "object": "fine_tuning.job.checkpoint",
        "created_at": 1234,
        "fine_tuning_job_id": JOB_ID,
        "step_number": 20,
        "fine_tuned_model_checkpoint": "ft:tiny-llama:cats:ftjob-abc:ckpt-step-20",
        "metrics": {"step": 20, "train_loss": 1.5, "valid_loss": None},
        "result_files": ["file-1", "file-2"],
    }
    assert event.message == "Checkpoint saved at step 20 (epoch 1): 2 file(s)."
    assert event.data == {
        "step": 20,
        "checkpoint": "ftckpt-1",
        "result_files": ["file-1", "file-2"],
        "metrics": record["metrics"],
    }


def test_the_base_evaluation_is_kept_on_the_job_and_said_in_an_event() -> None:
    update = messages.base_evaluation({"type": "base_evaluation", "valid_loss": 3.5712})
    assert update == Update(
        {"base_valid_loss": 3.5712},
        [
            Event(
                "Base model validation loss 3.571 before training.",
                type="metrics",
                data={"base_valid_loss": 3.5712},
            )
        ],
    )


def test_a_base_evaluation_without_a_number_changes_nothing_and_says_nothing() -> None:
    for odd in (None, "3.57", True):
        assert messages.base_evaluation({"type": "base_evaluation", "valid_loss": odd}) == Update()


CHECKPOINT_LINE = {
    "type": "checkpoint",
    "step": 20,
    "epoch": 1,
    "path": "/data/jobs/ftjob-abc/checkpoints/step-20",
    "files": [],
}


def _metrics(line_metrics: dict, job: dict) -> dict:
    line = {**CHECKPOINT_LINE, "metrics": line_metrics}
    record, event = messages.checkpoint(
        line, JOB_ID, job, [], checkpoint_id="ftckpt-1", created_at=1234
    )
    assert event.data["metrics"] == record["metrics"]
    return record["metrics"]


def test_a_checkpoint_carries_the_base_validation_loss_from_the_worker_or_the_job() -> None:
    measured = {"train_loss": 1.5, "valid_loss": 1.25, "base_valid_loss": 3.57}
    assert _metrics(measured, JOB)["base_valid_loss"] == 3.57
    # A worker resumed from a checkpoint that kept no figure: the job's own is used.
    resumed = {"train_loss": 1.0, "valid_loss": 1.2, "base_valid_loss": None}
    assert _metrics(resumed, {**JOB, "base_valid_loss": 3.5})["base_valid_loss"] == 3.5
    # No figure anywhere (no validation file): no key rather than a null.
    assert "base_valid_loss" not in _metrics(resumed, JOB)
    assert "base_valid_loss" not in _metrics({"train_loss": 1.0}, {**JOB, "base_valid_loss": None})


def test_success_names_the_model_and_takes_the_last_checkpoints_files() -> None:
    line = {"type": "succeeded", "trained_tokens": 4000, "trained_steps": 40}
    checkpoints = [{"result_files": ["file-1"]}, {"result_files": ["file-7", "file-8"]}]
    assert messages.succeeded(line, JOB_ID, JOB, checkpoints) == {
        "trained_tokens": 4000,
        "trained_steps": 40,
        "estimated_finish": None,
        "fine_tuned_model": "ft:tiny-llama:cats:ftjob-abc",
        "result_files": ["file-7", "file-8"],
    }
    no_suffix = messages.succeeded(line, JOB_ID, {**JOB, "suffix": None}, [])
    assert no_suffix["fine_tuned_model"] == "ft:tiny-llama:engine:ftjob-abc"
    assert no_suffix["result_files"] == []


def test_a_reported_failure_is_the_jobs_error_with_defaults_for_what_is_missing() -> None:
    assert messages.failed({"type": "failed", "code": "bad_dataset", "reason": "line 3"}) == {
        "code": "bad_dataset",
        "message": "line 3",
        "param": None,
    }
    assert messages.failed({"type": "failed"}) == {
        "code": "training_failed",
        "message": "training failed",
        "param": None,
    }


def test_a_secret_is_scrubbed_wherever_it_appears() -> None:
    assert scrub("bad key k-1 (k-1)", "k-1") == f"bad key {REDACTED} ({REDACTED})"
    assert scrub("nothing to hide", None) == "nothing to hide"
