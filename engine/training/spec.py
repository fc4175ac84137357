"""What one training job is asked to do: the JSON file the server hands to a worker."""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from client.hyperparameters import (
    LOCAL_ENGINE_RANGES,
    RANGED_FIELDS,
    HyperparameterFields,
    in_range,
    number,
)
from client.hyperparameters import describe_range as interval

# The engine's allowed values, named in its errors: the client's "local engine" profile, so
# that the client refuses before uploading exactly what the engine would refuse after.
RANGES = LOCAL_ENGINE_RANGES


def format_number(value: float) -> str:
    """A bound or a value as people write it: 20, 1e-05, 2147483647 (never 2.14748e+09).

    Whole numbers sent as integers are echoed in full, however long: the caller wrote them.
    """
    return str(value) if isinstance(value, int) else number(value)


def describe_range(name: str) -> str:
    """`[1, 20]`, `(0, 1]`: the allowed values of `name` in interval notation (every range of
    the engine has a cap)."""
    return interval(RANGES[name])


def check_range(name: str, value: Any) -> Any:
    """`value` when it is a number in `name`'s range; a pydantic error naming the range if not.

    True and False are refused: JSON's booleans are not numbers, though pydantic reads them
    as 1 and 0.
    """
    if isinstance(value, bool):
        raise PydanticCustomError(
            "not_a_number",
            "must be a number in {allowed}, not {got}",
            {"allowed": describe_range(name), "got": str(value).lower()},
        )
    if isinstance(value, int | float) and not in_range(RANGES[name], value):
        raise PydanticCustomError(
            "out_of_range",
            "must be in {allowed} (got {got})",
            {"allowed": describe_range(name), "got": format_number(value)},
        )
    return value


class Hyperparameters(HyperparameterFields):
    """The client's hyperparameter fields and defaults (Nebius's), inside `RANGES`."""

    @field_validator(*RANGED_FIELDS, mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any, info: ValidationInfo) -> Any:
        return check_range(info.field_name, value) if isinstance(value, bool) else value

    @field_validator(*RANGED_FIELDS, mode="after")
    @classmethod
    def _in_range(cls, value: float, info: ValidationInfo) -> float:
        return check_range(info.field_name, value)


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
    seed: int = Field(42, ge=RANGES["seed"][0], le=RANGES["seed"][1])
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
