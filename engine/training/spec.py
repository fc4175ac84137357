"""What one training job is asked to do: the JSON file the server hands to a worker."""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

# The engine's allowed values, named in its errors: ranges that suit a small machine, inside
# Nebius's published ones where Nebius has them. field -> (low, high or None for no upper
# bound, low inclusive, high inclusive). The client keeps the same table as its "local engine"
# profile, and a test pins the two equal: change both or neither.
RANGES: dict[str, tuple[float, float | None, bool, bool]] = {
    "batch_size": (1, 64, True, True),
    "learning_rate": (0, 1, False, True),
    "n_epochs": (1, 20, True, True),
    "warmup_ratio": (0, 1, True, True),
    "weight_decay": (0, 1, True, True),
    "max_grad_norm": (0, 100, False, True),
    "context_length": (8, 131072, True, True),
    "lora_r": (1, 128, True, True),
    "lora_alpha": (1, 1024, True, True),
    "lora_dropout": (0, 1, True, False),
    # Not a hyperparameter (a job's top-level field), but the same kind of rule. Its bound
    # keeps it inside what the worker's random generators take.
    "seed": (0, 2**31 - 1, True, True),
}
SUFFIX_MAX_LENGTH = 64


def format_number(value: float) -> str:
    """A bound or a value as people write it: 20, 1e-05, 2147483647 (never 2.14748e+09)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_range(name: str) -> str:
    """`[1, 20]`, `(0, 1]`, `[0, ∞)`: the allowed values of `name` in interval notation."""
    low, high, low_inclusive, high_inclusive = RANGES[name]
    left = "[" if low_inclusive else "("
    if high is None:
        return f"{left}{format_number(low)}, ∞)"
    right = "]" if high_inclusive else ")"
    return f"{left}{format_number(low)}, {format_number(high)}{right}"


def in_range(name: str, value: float) -> bool:
    low, high, low_inclusive, high_inclusive = RANGES[name]
    above = value >= low if low_inclusive else value > low
    below = high is None or (value <= high if high_inclusive else value < high)
    return above and below  # NaN compares false both ways, so it is refused too


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
    if isinstance(value, int | float) and not in_range(name, value):
        raise PydanticCustomError(
            "out_of_range",
            "must be in {allowed} (got {got})",
            {"allowed": describe_range(name), "got": format_number(value)},
        )
    return value


_RANGED_HYPERPARAMETERS = tuple(name for name in RANGES if name != "seed")


class Hyperparameters(BaseModel):
    """Nebius's fine-tuning hyperparameters, with Nebius's defaults, inside `RANGES`."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = 8
    learning_rate: float = 1e-5
    n_epochs: int = 3
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    packing: bool = True
    max_grad_norm: float = 1.0
    context_length: int = 8192
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 8
    lora_dropout: float = 0.0

    @field_validator(*_RANGED_HYPERPARAMETERS, mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any, info: ValidationInfo) -> Any:
        return check_range(info.field_name, value) if isinstance(value, bool) else value

    @field_validator(*_RANGED_HYPERPARAMETERS, mode="after")
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
