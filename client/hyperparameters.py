"""Hyperparameters and the job request, with Nebius's defaults and each backend's ranges.

This module is the one home of the ranges. Bad values fail here, before any upload or
request, naming the field and the range of the backend in use:

- `NEBIUS_RANGES`: what Nebius publishes in its OpenAPI schema (SupervisedHParameters and
  FineTuningRequest in nebius/tokenfactory-rl, openapi-fine-tuning.yaml), with one addition
  of ours: a learning rate must be in (0, 1], a guard against typos (Nebius allows any
  value of at least 0). Messages say so.
- `LOCAL_ENGINE_RANGES`: what the local engine accepts (the engine checks its requests with
  this very table, in `engine.training.spec`). Wider where a small machine wants it (a
  context of 512 tokens, a LoRA rank of 4), capped where a typo would run for hours.

`HyperparameterFields` (the fields and Nebius's defaults) is shared with the engine too; the
engine adds its own messages, in its API's words.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from client.errors import NebiusError

# (low, high or None for no cap, low inclusive, high inclusive)
Range = tuple[float, float | None, bool, bool]

# The seed's cap on both backends; the local engine's random generators take no more.
SEED_MAX = 2**31 - 1
# Nebius's limit (FineTuningRequest.suffix maxLength); the local engine keeps it too, so a
# request that works on one backend works on the other.
SUFFIX_MAX_CHARS = 64

NEBIUS_RANGES: dict[str, Range] = {
    "batch_size": (1, 64, True, True),
    # Nebius: minimum 0, no cap. (0, 1] is our typo guard (see NEBIUS_NOTES).
    "learning_rate": (0.0, 1.0, False, True),
    "n_epochs": (1, 20, True, True),
    "warmup_ratio": (0.0, 1.0, True, True),
    "weight_decay": (0.0, None, True, False),
    "max_grad_norm": (0.0, None, False, False),
    "context_length": (8192, 131072, True, True),
    "lora_r": (8, 128, True, True),
    "lora_alpha": (8, None, True, False),
    "lora_dropout": (0.0, 1.0, True, True),
    "seed": (0, SEED_MAX, True, True),
}

# Fields whose range in NEBIUS_RANGES is ours rather than Nebius's: said in every message.
NEBIUS_NOTES: dict[str, str] = {
    "learning_rate": "a typo guard of ours; Nebius itself allows any value of at least 0",
}

LOCAL_ENGINE_RANGES: dict[str, Range] = {
    "batch_size": (1, 64, True, True),
    "learning_rate": (0.0, 1.0, False, True),
    "n_epochs": (1, 20, True, True),
    "warmup_ratio": (0.0, 1.0, True, True),
    "weight_decay": (0.0, 1.0, True, True),
    "max_grad_norm": (0.0, 100.0, False, True),
    "context_length": (8, 131072, True, True),
    "lora_r": (1, 128, True, True),
    "lora_alpha": (1, 1024, True, True),
    "lora_dropout": (0.0, 1.0, True, False),
    "seed": (0, SEED_MAX, True, True),
}


@dataclass(frozen=True)
class RangeProfile:
    """The ranges of one backend, and how messages name it."""

    key: Literal["nebius", "local-engine"]
    where: str  # "on Nebius": what follows a range in a message
    ranges: Mapping[str, Range]
    notes: Mapping[str, str] = field(default_factory=dict)

    def check(self, name: str, value: float) -> str | None:
        """None when `value` is allowed, else the message (field, range, value)."""
        if not math.isfinite(value):  # JSON has no infinity, and "no cap" does not mean it
            return f"{name} must be a finite number (got {number(value)})"
        if in_range(self.ranges[name], value):
            return None
        rule = describe_rule(self.ranges[name])
        note = self.notes.get(name)
        if note:
            return f"{name} must be {rule} (got {number(value)}): {note}"
        return f"{name} must be {rule} {self.where} (got {number(value)})"

    def hint(self, name: str) -> str:
        """A short line for a form field or `--help`: the allowed values."""
        text = describe_range(self.ranges[name])
        note = " (our typo guard)" if name in self.notes else ""
        return f"{text}{note}"


NEBIUS = RangeProfile("nebius", "on Nebius", NEBIUS_RANGES, NEBIUS_NOTES)
LOCAL_ENGINE = RangeProfile("local-engine", "on the local engine", LOCAL_ENGINE_RANGES)
# Key of the pydantic validation context that carries the profile.
_CONTEXT_KEY = "range_profile"


def number(value: float) -> str:
    """1e-05, 0.5, 2147483647: whole numbers in full, others short."""
    if isinstance(value, bool):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


def in_range(rng: Range, value: float) -> bool:
    """Whether `value` lies in `rng`; NaN compares false both ways, so it never does."""
    low, high, low_inc, high_inc = rng
    above = value >= low if low_inc else value > low
    below = high is None or (value <= high if high_inc else value < high)
    return above and below


def describe_range(rng: Range) -> str:
    """`[1, 64]`, `(0, 1]`, `at least 0`, `above 0`."""
    low, high, low_inc, high_inc = rng
    if high is None:
        return f"{'at least' if low_inc else 'above'} {number(low)}"
    left = "[" if low_inc else "("
    right = "]" if high_inc else ")"
    return f"{left}{number(low)}, {number(high)}{right}"


def describe_rule(rng: Range) -> str:
    """What follows "must be": `in [1, 64]` or `at least 0`."""
    text = describe_range(rng)
    return text if rng[1] is None else f"in {text}"


def profile_for_base_url(base_url: str) -> RangeProfile:
    """The local engine's ranges for a loopback server (where the local engine runs: the
    bot's embedded engine, or `xgenlens-engine` on this machine), Nebius's otherwise."""
    host = (urlsplit(base_url).hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return LOCAL_ENGINE
    try:
        return LOCAL_ENGINE if ipaddress.ip_address(host).is_loopback else NEBIUS
    except ValueError:
        return NEBIUS


# In the validation context instead of a profile: values checked when they were first made.
_ALREADY_CHECKED = "already-checked"


def _profile(info: ValidationInfo) -> RangeProfile | None:
    """The profile to check with; None for values already checked (see `restore`)."""
    context = info.context
    if isinstance(context, dict):
        given = context.get(_CONTEXT_KEY)
        if isinstance(given, RangeProfile):
            return given
        if given == _ALREADY_CHECKED:
            return None
    return NEBIUS  # the strict one when no caller said


class HyperparameterError(NebiusError):
    """A job request that the backend would refuse; raised before any upload or request."""

    default_hint = "Fix the value named above; `finetune create --help` lists every range."


class HyperparameterFields(BaseModel):
    """Nebius's hyperparameters with Nebius's defaults (SupervisedHParameters), no ranges:
    the one list of fields, which `Hyperparameters` here and the engine's model both check."""

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


# The fields a range table bounds (the rest are booleans); "seed" is a job's field.
RANGED_FIELDS = tuple(name for name in LOCAL_ENGINE_RANGES if name != "seed")


class Hyperparameters(HyperparameterFields):
    """Nebius's hyperparameters with Nebius's defaults. Built with `build(profile, ...)`
    the ranges are that profile's; the plain constructor uses Nebius's."""

    model_config = ConfigDict(frozen=True)

    @field_validator(*RANGED_FIELDS, mode="after")
    @classmethod
    def _in_range(cls, value: float, info: ValidationInfo) -> float:
        profile = _profile(info)
        problem = profile.check(info.field_name or "", value) if profile else None
        if problem:
            raise ValueError(problem)
        return value

    @classmethod
    def build(cls, profile: RangeProfile = NEBIUS, /, **values: Any) -> Hyperparameters:
        """Like the constructor with `profile`'s ranges, but raises HyperparameterError with
        one message per bad field (what callers show to people); None values are left out."""
        given = {k: v for k, v in values.items() if v is not None}
        try:
            return cls.model_validate(given, context={_CONTEXT_KEY: profile})
        except ValidationError as exc:
            raise HyperparameterError(format_validation_error(exc)) from None

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> Hyperparameters:
        """Values stored after they were checked with the profile of their day (a request
        kept for a restart): the types are checked, the ranges not again, so that a plan made
        for the local engine reads back whatever profile is the default. Raises
        pydantic's ValidationError for data that is not hyperparameters at all."""
        return cls.model_validate(data, context={_CONTEXT_KEY: _ALREADY_CHECKED})


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        where = ".".join(loc) or "value"
        msg = err["msg"].removeprefix("Value error, ")
        if loc and msg.startswith(loc[-1] + " "):
            lines.append(msg)  # our own range messages name the field already
        elif err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown hyperparameter")
        else:
            got = repr(err.get("input"))
            got = got if len(got) <= 40 else got[:37] + "..."
            lines.append(f"{where}: {msg} (got {got})")
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
    """What `create_job` sends: `hyperparameters` only, never `method` (Nebius refuses the
    two together)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    suffix: str | None = None
    seed: int | None = None
    integrations: list[WandbIntegration] = Field(default_factory=list)

    @field_validator("seed", mode="after")
    @classmethod
    def _seed_in_range(cls, value: int | None, info: ValidationInfo) -> int | None:
        profile = _profile(info)
        problem = None if value is None or profile is None else profile.check("seed", value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("suffix", mode="after")
    @classmethod
    def _suffix_length(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and len(value) > SUFFIX_MAX_CHARS:
            raise ValueError(suffix_error(len(value), _profile(info) or NEBIUS))
        return value

    @classmethod
    def build(cls, profile: RangeProfile = NEBIUS, /, **fields: Any) -> JobRequest:
        """Checked with `profile`'s ranges; HyperparameterError names each bad field."""
        try:
            return cls.model_validate(fields, context={_CONTEXT_KEY: profile})
        except ValidationError as exc:
            raise HyperparameterError(format_validation_error(exc)) from None

    def to_body(self) -> dict[str, Any]:
        body = self.model_dump(mode="json", exclude_none=True)
        if not body["integrations"]:
            del body["integrations"]
        return body


def suffix_error(length: int, profile: RangeProfile = NEBIUS) -> str:
    return f"suffix must be at most {SUFFIX_MAX_CHARS} characters {profile.where} (got {length})"
