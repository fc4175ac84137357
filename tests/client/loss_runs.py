"""Recorded runs for the loss-chart tests: what a job's events and checkpoints look like.

`engine_run` records them as the local engine does, through the very functions its runner
uses (`engine.worker_messages`, `engine.objects.event_object`), so a change to the engine's
events shows up here. `nebius_run` is a Nebius job as its cookbook printed it
(post-training/fine-tuning-1/fine_tune_llama.ipynb): plain-message events and five
checkpoints, one per epoch, with the train/valid losses of its table.
"""

from __future__ import annotations

import math
import random
from typing import Any

from engine import worker_messages
from engine.objects import event_object
from tests.client.nebius_objects import JOB_ID as NEBIUS_JOB_ID
from tests.client.nebius_objects import RESULT_FILE, nebius_job

ENGINE_JOB_ID = "ftjob-7c1e9a04b2d35f6e8a90c1d2"
ENGINE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
T0 = 1_700_000_000
# Validation loss at each epoch's end: lowest after epoch 2, then it overfits.
ENGINE_VALID = (1.462, 1.318, 1.347)

# The cookbook's events and its checkpoints' (train_loss, valid_loss), epochs 1 to 5.
NEBIUS_MESSAGES = (
    "Job is submitted",
    "Dataset 'validation' processed successfully",
    "Dataset 'training' processed successfully",
    "Training completed successfully",
)
NEBIUS_LOSSES = (
    (3.363983, 3.284986),
    (3.364883, 2.765526),
    (3.316328, 2.397027),
    (3.234269, 2.289490),
    (3.147930, 2.252911),
)


def _recorded(events: list[dict[str, Any]], pending: list[worker_messages.Event]) -> None:
    for event in pending:
        record = event_object(event.message, level=event.level, type=event.type, data=event.data)
        record["created_at"] = T0 + len(events)  # one a second: the order shows in the stamps
        events.append(record)


def engine_run(
    *,
    steps_per_epoch: int = 20,
    epochs: int = 3,
    learning_rate: float = 5e-5,
    warmup_ratio: float = 0.1,
    valid: tuple[float, ...] | None = ENGINE_VALID,
    report_every: int = 1,
    until_step: int | None = None,
    seed: int = 7,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(job, events oldest first, checkpoints) of a local-engine run: the loss falls fast
    then levels off, the learning rate warms up then decays linearly (as the engine's
    scheduler does); `until_step` stops it there, still running."""
    rng = random.Random(seed)
    total = steps_per_epoch * epochs
    stop = min(until_step or total, total)
    job: dict[str, Any] = {
        "id": ENGINE_JOB_ID,
        "object": "fine_tuning.job",
        "model": ENGINE_MODEL,
        "created_at": T0,
        "status": "succeeded" if stop == total else "running",
        "training_file": "file-train",
        "validation_file": "file-valid" if valid else None,
        "hyperparameters": {"n_epochs": epochs, "learning_rate": learning_rate},
        "trained_steps": stop,
        "total_steps": total,
        "suffix": None,
    }
    events: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    started = {
        "type": "started",
        "device": "cuda",
        "dtype": "bfloat16",
        "model": ENGINE_MODEL,
        "trainable_parameters": 4_884_480,
        "total_parameters": 139_400_000,
        "total_steps": total,
        "epochs": epochs,
        "resumed_from_step": None,
    }
    _recorded(events, worker_messages.started(started, None).events)
    warmup = math.ceil(total * warmup_ratio)
    step = 0
    for epoch in range(1, epochs + 1):
        losses: list[float] = []
        for _ in range(steps_per_epoch):
            if step >= stop:
                return job, events, checkpoints
            factor = (step + 1) / warmup if step < warmup else (total - step) / (total - warmup)
            step += 1
            loss = 0.95 + 1.45 * math.exp(-step / 9) - 0.06 * (epoch - 1) + rng.gauss(0, 0.07)
            losses.append(loss)
            if step % report_every and step not in (1, total):  # as the engine reports
                continue
            progress = {
                "type": "progress",
                "step": step,
                "total_steps": total,
                "epoch": epoch,
                "loss": loss,
                "learning_rate": learning_rate * max(0.0, factor),
                "tokens_per_second": 2400.0,
                "trained_tokens": step * 4096,
                "eta_seconds": (total - step) * 1.7,
            }
            _recorded(events, worker_messages.progress(progress, clock=T0).events)
        train_loss = sum(losses) / len(losses)
        valid_loss = valid[epoch - 1] if valid else None
        ended = {
            "type": "epoch",
            "epoch": epoch,
            "step": step,
            "train_loss": train_loss,
            "valid_loss": valid_loss,
        }
        _recorded(events, worker_messages.epoch(ended).events)
        record, event = worker_messages.checkpoint(
            {
                "step": step,
                "epoch": epoch,
                "metrics": {"train_loss": train_loss, "valid_loss": valid_loss},
            },
            ENGINE_JOB_ID,
            job,
            [f"file-ckpt-{epoch}-adapter", f"file-ckpt-{epoch}-config"],
            checkpoint_id=f"ftckpt-{epoch:024x}",
            created_at=T0 + len(events),
        )
        _recorded(events, [event])
        checkpoints.append(record)
    return job, events, checkpoints


def nebius_run(
    *, valid: bool = True
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(job, events oldest first, checkpoints newest first: Nebius does not promise an order)
    of the cookbook's five-epoch job; `valid=False`: the same job without a validation file."""
    job = nebius_job("succeeded", total_steps=100, trained_steps=100)
    if not valid:
        job["validation_file"] = None
    events = [
        {
            "id": f"ftevent-{i:04d}",
            "object": "fine_tuning.job.event",
            "created_at": 1765431035 + 30 * i,
            "level": "info",
            "message": message,
            "type": "message",
            "data": None,
        }
        for i, message in enumerate(NEBIUS_MESSAGES)
    ]
    checkpoints = []
    for index, (train_loss, valid_loss) in enumerate(NEBIUS_LOSSES):
        step = 20 * (index + 1)
        checkpoint_id = f"ftckpt_5c0f2d1e-7a3b-4c8d-9e6f-{index:012d}"
        checkpoints.append(
            {
                "id": checkpoint_id,
                "created_at": 1765431100 + step,
                "fine_tuned_model_checkpoint": f"{NEBIUS_JOB_ID}:{checkpoint_id}",
                "fine_tuning_job_id": NEBIUS_JOB_ID,
                "metrics": {
                    "full_valid_loss": None,
                    "full_valid_mean_token_accuracy": None,
                    "step": float(step),
                    "train_loss": train_loss,
                    "train_mean_token_accuracy": 0.61,
                    "valid_loss": valid_loss if valid else None,
                    "valid_mean_token_accuracy": 0.58 if valid else None,
                },
                "object": "fine_tuning.job.checkpoint",
                "step_number": step,
                "result_files": [RESULT_FILE],
            }
        )
    return job, events, checkpoints[::-1]
