"""The lines a worker writes to stdout, one JSON object each: the worker protocol."""

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel


class DatasetEvent(BaseModel):
    type: Literal["dataset"] = "dataset"
    examples: int
    validation_examples: int
    tokens: int
    truncated: int
    dropped: int
    context_length: int
    message: str


class StartedEvent(BaseModel):
    type: Literal["started"] = "started"
    device: str
    dtype: str
    model: str
    trainable_parameters: int
    total_parameters: int
    total_steps: int
    epochs: int
    resumed_from_step: int | None = None


class ProgressEvent(BaseModel):
    type: Literal["progress"] = "progress"
    step: int
    total_steps: int
    epoch: int
    loss: float
    learning_rate: float
    tokens_per_second: float
    trained_tokens: int
    eta_seconds: float


class BaseEvaluationEvent(BaseModel):
    """The validation loss of the model before its first step: the figure training improves on.

    Sent once per job, only when it has a validation file, and not again when it resumes.
    """

    type: Literal["base_evaluation"] = "base_evaluation"
    valid_loss: float


class EpochEvent(BaseModel):
    type: Literal["epoch"] = "epoch"
    epoch: int
    step: int
    train_loss: float
    valid_loss: float | None


class CheckpointMetrics(BaseModel):
    train_loss: float
    valid_loss: float | None
    # The job's BaseEvaluationEvent figure, carried by every checkpoint (a resumed run reads
    # it from its checkpoint's resume state); None for a job without a validation file.
    base_valid_loss: float | None = None


class CheckpointEvent(BaseModel):
    type: Literal["checkpoint"] = "checkpoint"
    step: int
    epoch: int
    path: str
    files: list[str]
    metrics: CheckpointMetrics


class SucceededEvent(BaseModel):
    type: Literal["succeeded"] = "succeeded"
    trained_tokens: int
    trained_steps: int


class NoticeEvent(BaseModel):
    """Something the job's owner should know that does not stop training (a job event)."""

    type: Literal["notice"] = "notice"
    level: Literal["info", "warn"] = "info"
    message: str


class FailedEvent(BaseModel):
    type: Literal["failed"] = "failed"
    code: str
    reason: str


Event = (
    DatasetEvent
    | StartedEvent
    | BaseEvaluationEvent
    | ProgressEvent
    | EpochEvent
    | CheckpointEvent
    | SucceededEvent
    | FailedEvent
    | NoticeEvent
)
Emit = Callable[[Event], None]
