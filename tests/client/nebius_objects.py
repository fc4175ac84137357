"""Objects shaped as Nebius really sends them, for the tests of the client, the CLI and the bot.

Shapes from Nebius's OpenAPI schema (nebius/tokenfactory-rl, openapi-fine-tuning.yaml:
FineTuningJob, FineTuningJobCheckpoint, Metrics) and the answers printed in Nebius's cookbook
(post-training/fine-tuning-1/fine_tune_llama.ipynb): ids `ftjob-<32 hex>`, `ftckpt_<uuid>`,
`file-<uuid>`; files with `status: None`; jobs with `method` and `tags` and no
`fine_tuned_model`; every metric listed, null when not measured.
"""

from __future__ import annotations

from typing import Any

JOB_ID = "ftjob-49b4625687fe42d1a981c9f9bbdfd569"
CHECKPOINT_IDS = (
    "ftckpt_5c0f2d1e-7a3b-4c8d-9e6f-1a2b3c4d5e6f",
    "ftckpt_98a07a09-9fb7-4009-8e18-0f72beade81c",
)
TRAINING_FILE = "file-019b0be3-b432-7392-8f07-9d714bc23224"
VALIDATION_FILE = "file-019b0be3-bfc8-7a03-9796-fba7337b9301"
RESULT_FILE = "file-019b0be9-0a1c-7e55-a3d2-5f4e3d2c1b0a"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
HYPERPARAMETERS = {
    "batch_size": 32,
    "learning_rate": 2e-05,
    "n_epochs": 5,
    "warmup_ratio": 0.03,
    "weight_decay": 0.0,
    "packing": True,
    "max_grad_norm": 1.0,
    "context_length": 8192,
    "lora": True,
    "lora_r": 8,
    "lora_alpha": 8,
    "lora_dropout": 0.0,
}


def nebius_file(file_id: str = TRAINING_FILE, filename: str = "training_data.jsonl") -> dict:
    """As `files.create` printed it in the cookbook."""
    return {
        "id": file_id,
        "bytes": 657543,
        "created_at": 1765431030,
        "filename": filename,
        "object": "file",
        "purpose": "fine-tune",
        "status": None,
        "expires_at": None,
        "status_details": None,
    }


def nebius_job(status: str = "running", **fields: Any) -> dict:
    """A job as Nebius gives it: hyperparameters under `method` (top level null), tags,
    an organization, and no `fine_tuned_model` at all."""
    job: dict[str, Any] = {
        "id": JOB_ID,
        "created_at": 1765431035,
        "error": None,
        "finished_at": 1765431268 if status in ("succeeded", "failed", "cancelled") else None,
        "hyperparameters": None,
        "method": {
            "type": "supervised",
            "supervised": {"hyperparameters": dict(HYPERPARAMETERS)},
        },
        "integrations": [],
        "from_checkpoint": None,
        "model": MODEL,
        "object": "fine_tuning.job",
        "organization_id": "org-3f2a9c",
        "result_files": [],
        "seed": 0,
        "suffix": "demo-run",
        "status": status,
        "trained_tokens": 1250000 if status == "succeeded" else None,
        "training_file": TRAINING_FILE,
        "validation_file": VALIDATION_FILE,
        "estimated_finish": None,
        "trained_steps": 40 if status == "succeeded" else 12,
        "total_steps": 40,
        "tags": ["xgenlens"],
    }
    job.update(fields)
    return job


def nebius_checkpoint(index: int, step: int, valid_loss: float | None) -> dict:
    return {
        "id": CHECKPOINT_IDS[index],
        "created_at": 1765431100 + step,
        "fine_tuned_model_checkpoint": f"{JOB_ID}:{CHECKPOINT_IDS[index]}",
        "fine_tuning_job_id": JOB_ID,
        "metrics": {
            "full_valid_loss": None,
            "full_valid_mean_token_accuracy": None,
            "step": float(step),
            "train_loss": 1.5 - index * 0.4,
            "train_mean_token_accuracy": 0.61 + index * 0.1,
            "valid_loss": valid_loss,
            "valid_mean_token_accuracy": None if valid_loss is None else 0.58,
        },
        "object": "fine_tuning.job.checkpoint",
        "step_number": step,
        "result_files": [RESULT_FILE],
    }


def nebius_checkpoints() -> dict:
    """The list answer (ListCheckpointsResponse), newest first: the order is not promised."""
    data = [nebius_checkpoint(1, 40, 1.02), nebius_checkpoint(0, 20, None)]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"],
        "last_id": data[-1]["id"],
        "has_more": False,
    }
