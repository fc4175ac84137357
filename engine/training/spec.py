"""What one training job is asked to do: the JSON file the server hands to a worker."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Hyperparameters(BaseModel):
    """Nebius's fine-tuning hyperparameters, with Nebius's defaults."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(1e-5, gt=0)
    n_epochs: int = Field(3, ge=1)
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    packing: bool = True
    max_grad_norm: float = Field(1.0, ge=0)
    context_length: int = Field(8192, ge=8)
    lora: bool = False
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(8, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)


class WandbSpec(BaseModel):
    """Where the worker logs metrics on Weights & Biases.

    No API key here: the spec is a file on disk, so the key reaches the worker only in its
    environment (WANDB_API_KEY).
    """

    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1)
    name: str | None = None
    entity: str | None = None


class TrainSpec(BaseModel):
    """One job for one worker process; paths are absolute."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    # The model the job names; the weights come from `base_model` when that is set.
    model: str
    models_dir: Path
    extra_model_dirs: list[Path] = Field(default_factory=list)
    training_file: Path
    validation_file: Path | None = None
    output_dir: Path
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    seed: int = 42
    # A checkpoint folder written by an earlier run of this job (`.../checkpoints/step-N`).
    resume_from: Path | None = None
    # When `model` is a fine-tuned model of the engine: the model id or full fine-tune folder
    # to load, and the LoRA adapter folders merged into it, oldest first, before training.
    base_model: str | None = None
    merge_adapters: list[Path] = Field(default_factory=list)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # auto: bf16 mixed precision where the hardware has native bf16 (CUDA, or CPUs with
    # AVX512-BF16), float32 elsewhere.
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    # The job's W&B integration, if it asked for one; None logs nowhere but the job's events.
    wandb: WandbSpec | None = None

    @classmethod
    def from_file(cls, path: Path) -> "TrainSpec":
        return cls.model_validate_json(Path(path).read_bytes())
