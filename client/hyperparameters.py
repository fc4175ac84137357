"""Hyperparameters and the job request, with Nebius's defaults and ranges.

Bad values fail here, before any request, naming the field and the allowed range.
Ranges: defaults come from the Nebius API reference (create a fine-tuning job); the bounds
are the ones this project enforces (see the README): wide enough for every model Nebius
offers, narrow enough to catch typos such as a learning rate of 1 or 1e5 epochs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from client.errors import NebiusError

# field -> (low, high, low inclusive, high inclusive); documents and enforces the ranges.
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "batch_size": (1, 1024, True, True),
    "learning_rate": (0.0, 1.0, False, True),
    "n_epochs": (1, 100, True, True),
    "warmup_ratio": (0.0, 1.0, True, True),
    "weight_decay": (0.0, 1.0, True, True),
    "max_grad_norm": (0.0, 100.0, False, True),
    "context_length": (128, 131072, True, True),
    "lora_r": (1, 512, True, True),
    "lora_alpha": (1, 1024, True, True),
    "lora_dropout": (0.0, 1.0, True, False),
}


def describe_range(name: str) -> str:
    low, high, low_inc, high_inc = RANGES[name]
    left = "[" if low_inc else "("
    right = "]" if high_inc else ")"
    return f"{left}{low:g}, {high:g}{right}"


class HyperparameterError(NebiusError):
    """A job request that Nebius would refuse; raised before any request."""

    default_hint = "Fix the value named above; `finetune create --help` lists every range."


def _check_range(name: str, value: float) -> float:
    low, high, low_inc, high_inc = RANGES[name]
    ok_low = value >= low if low_inc else value > low
    ok_high = value <= high if high_inc else value < high
    if not (ok_low and ok_high):
        raise ValueError(f"{name} must be in {describe_range(name)} (got {value:g})")
    return value


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

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

    @field_validator(*RANGES, mode="after")
    @classmethod
    def _in_range(cls, value: float, info: Any) -> float:
        return _check_range(info.field_name, value)

    @classmethod
    def build(cls, **values: Any) -> Hyperparameters:
        """Like the constructor, but raises HyperparameterError with a one-line message per
        bad field (what callers show to people)."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise HyperparameterError(format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "value"
        msg = err["msg"].removeprefix("Value error, ")
        if msg.startswith(field):
            lines.append(msg)
        elif err["type"] == "extra_forbidden":
            lines.append(f"{field}: unknown hyperparameter")
        else:
            lines.append(f"{field}: {msg} (got {err.get('input')!r})")
    return "; ".join(lines)


class WandbSettings(BaseModel):
    model_config = ConfigDict(extra="allow")
    project: str = Field(min_length=1)
    name: str | None = None
    entity: str | None = None
    api_key: str | None = Field(default=None, repr=False)


class WandbIntegration(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["wandb"] = "wandb"
    wandb: WandbSettings


class JobRequest(BaseModel):
    """What `create_job` sends."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    suffix: str | None = Field(default=None, max_length=64)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    integrations: list[WandbIntegration] = Field(default_factory=list)

    def to_body(self) -> dict[str, Any]:
        body = self.model_dump(mode="json", exclude_none=True)
        if not body["integrations"]:
            del body["integrations"]
        return body
