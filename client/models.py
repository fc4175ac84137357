"""Pydantic objects for every response in the Nebius contract.

All accept fields they do not know (Nebius adds some) and treat all but the id as optional
(Nebius leaves some out).
"""

from __future__ import annotations

import posixpath
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# Statuses Nebius/OpenAI use for a file that can be used for training.
FILE_READY_STATUSES: frozenset[str] = frozenset({"processed", "ready", "succeeded", "uploaded_ok"})
FILE_FAILED_STATUSES: frozenset[str] = frozenset({"error", "failed", "deleted"})


class NebiusObject(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Model(NebiusObject):
    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None


def clean_filename(name: str | None, fallback: str = "file") -> str:
    """The last path component of a name Nebius may prefix with folders; never a traversal."""
    base = posixpath.basename((name or "").replace("\\", "/").rstrip("/"))
    return base if base not in ("", ".", "..") else fallback


class FileObject(NebiusObject):
    id: str
    object: str = "file"
    bytes: int | None = None
    created_at: int | None = None
    filename: str | None = None
    purpose: str | None = None
    # OpenAI marks this deprecated and Nebius may omit it: None means "no status given".
    status: str | None = None
    status_details: str | None = None

    @property
    def clean_filename(self) -> str:
        return clean_filename(self.filename, fallback=self.id)

    @property
    def is_ready(self) -> bool:
        return self.status is None or self.status.lower() in FILE_READY_STATUSES

    @property
    def is_failed(self) -> bool:
        return self.status is not None and self.status.lower() in FILE_FAILED_STATUSES


class JobError(NebiusObject):
    code: str | None = None
    message: str | None = None
    param: str | None = None


class Job(NebiusObject):
    id: str
    object: str = "fine_tuning.job"
    model: str | None = None
    created_at: int | None = None
    finished_at: int | None = None
    status: str = "queued"
    training_file: str | None = None
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = None
    # Nebius (and OpenAI's newer shape) may give them here instead:
    # {"type": "supervised", "supervised": {"hyperparameters": {...}}}.
    method: dict[str, Any] | None = None
    integrations: list[Any] | None = None
    tags: list[Any] | None = None
    result_files: list[str] = Field(default_factory=list)
    trained_tokens: int | None = None
    # OpenAI and the local engine only: on Nebius a checkpoint becomes a model by deployment.
    fine_tuned_model: str | None = None
    error: JobError | None = None
    trained_steps: int | None = None
    total_steps: int | None = None
    estimated_finish: int | None = None
    seed: int | None = None
    suffix: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def effective_hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters the job runs with: the top-level ones, else those under
        `method` (`method.supervised.hyperparameters`); {} when the job gives neither."""
        if self.hyperparameters:
            return self.hyperparameters
        method = self.method or {}
        kind = method.get("type")
        if not isinstance(kind, str):
            return {}
        # The key is the type with "_" for "-" ("spec-draft" -> "spec_draft").
        config = method.get(kind) or method.get(kind.replace("-", "_"))
        found = config.get("hyperparameters") if isinstance(config, dict) else None
        return found if isinstance(found, dict) else {}

    @property
    def progress(self) -> float | None:
        """Fraction of steps done, when Nebius reports steps."""
        if self.trained_steps is None or not self.total_steps:
            return None
        return min(1.0, self.trained_steps / self.total_steps)


class Event(NebiusObject):
    id: str
    object: str = "fine_tuning.job.event"
    created_at: int | None = None
    level: str | None = None
    message: str = ""
    type: str | None = None
    data: Any = None


class Checkpoint(NebiusObject):
    id: str
    object: str = "fine_tuning.job.checkpoint"
    created_at: int | None = None
    fine_tuning_job_id: str | None = None
    step_number: int = 0
    fine_tuned_model_checkpoint: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    result_files: list[str] = Field(default_factory=list)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list call."""

    model_config = ConfigDict(extra="allow")
    object: str = "list"
    data: list[T] = Field(default_factory=list)
    has_more: bool = False
