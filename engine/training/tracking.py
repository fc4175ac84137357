"""Where a job's metrics go besides its events: Weights & Biases, when the job asks for it.

The loop talks to a `Tracker`; `open_tracker` picks one. `wandb` is not a dependency of
the engine: when it is missing, or a run cannot start (no network, a bad key), the job
trains anyway and says once, in its events, why nothing reaches W&B. A tracker never
fails a job, and no message it writes carries the API key, which reaches this process
only in its environment (WANDB_API_KEY).
"""

import logging
import os
from typing import Any, Protocol

from engine.training.events import Emit, EpochEvent, NoticeEvent, ProgressEvent
from engine.training.spec import TrainSpec

log = logging.getLogger("engine.training.tracking")

KEY_ENV = "WANDB_API_KEY"
# How long wandb.init may wait for W&B before giving up (its own default is 90 s, and the job
# waits with it: no network means a minute and a half before the first step). An operator's
# own WANDB_INIT_TIMEOUT wins.
INIT_TIMEOUT_ENV = "WANDB_INIT_TIMEOUT"
INIT_TIMEOUT_S = 20
# Longest reason quoted from a W&B error.
REASON_CHARS = 300
FALLBACK = "metrics are in the job's events"


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def finish(self, exit_code: int = 0) -> None: ...


class NullTracker:
    """Logs nowhere: the job's events are the record."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


def redact(text: str) -> str:
    """`text` without the API key in it, should an error message ever quote it."""
    key = os.environ.get(KEY_ENV)
    return text.replace(key, "[redacted]") if key else text


def _reason(exc: BaseException) -> str:
    return redact(f"{type(exc).__name__}: {exc}".strip())[:REASON_CHARS]


def progress_metrics(event: ProgressEvent) -> dict[str, float]:
    return {
        "train/loss": event.loss,
        "train/learning_rate": event.learning_rate,
        "train/tokens_per_second": event.tokens_per_second,
        "train/trained_tokens": event.trained_tokens,
        "train/epoch": event.epoch,
    }


def base_metrics(valid_loss: float) -> dict[str, float]:
    """The model's validation loss before training, logged at step 0: where the curve starts."""
    return {"epoch/valid_loss": valid_loss, "train/epoch": 0}


def epoch_metrics(event: EpochEvent) -> dict[str, float]:
    metrics = {"epoch/train_loss": event.train_loss, "train/epoch": event.epoch}
    if event.valid_loss is not None:
        metrics["epoch/valid_loss"] = event.valid_loss
    return metrics


class WandbTracker:
    """One W&B run; the first error it meets turns it into a NullTracker, saying so once."""

    def __init__(self, run: Any, emit: Emit) -> None:
        self._run = run
        self._emit = emit

    def log(self, metrics: dict[str, float], step: int) -> None:
        if self._run is None:
            return
        try:
            self._run.log(metrics, step=step)
        except Exception as exc:
            run, self._run = self._run, None
            _open.remove(self)
            self._emit(
                NoticeEvent(
                    level="warn",
                    message=f"W&B logging stopped at step {step} ({_reason(exc)}): {FALLBACK}.",
                )
            )
            _finish_quietly(run, 1)

    def finish(self, exit_code: int = 0) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        _open.remove(self)
        _finish_quietly(run, exit_code)


def _finish_quietly(run: Any, exit_code: int) -> None:
    try:
        run.finish(exit_code=exit_code)
    except Exception as exc:  # the metrics logged so far are W&B's to keep; training is done
        log.warning("W&B: could not finish the run: %s", _reason(exc))


# Trackers opened in this process and not finished: a failing or cancelled worker finishes
# them (`finish_open`), so W&B shows the run as failed rather than crashed later on.
_open: list[WandbTracker] = []


def finish_open(exit_code: int) -> None:
    for tracker in list(_open):
        tracker.finish(exit_code)


def _unavailable(emit: Emit, why: str) -> NullTracker:
    emit(
        NoticeEvent(
            level="warn", message=f"W&B logging was requested but {redact(why)}: {FALLBACK}."
        )
    )
    return NullTracker()


def _config(spec: TrainSpec) -> dict[str, Any]:
    return {
        **spec.hyperparameters.model_dump(),
        "model": spec.model,
        "base_model": spec.base_model,
        "seed": spec.seed,
        "job_id": spec.job_id,
    }


def _where(run: Any, project: str) -> str:
    try:
        url = run.url
    except Exception:  # offline runs have none, and some versions raise rather than say so
        url = None
    return f"{url}" if url else f"project {project}"


def open_tracker(spec: TrainSpec, emit: Emit) -> Tracker:
    """The W&B run the spec asks for, or a NullTracker (with a notice when W&B was asked for)."""
    settings = spec.wandb
    if settings is None:
        return NullTracker()
    try:
        import wandb
    except ImportError:
        return _unavailable(emit, "the wandb package is not installed where the engine runs")
    except Exception as exc:  # an installed but broken wandb must not fail the job either
        return _unavailable(emit, f"the wandb package could not be imported ({_reason(exc)})")
    # This process runs this one job: its environment is the job's to set.
    os.environ.setdefault(INIT_TIMEOUT_ENV, str(INIT_TIMEOUT_S))
    try:
        run = wandb.init(
            project=settings.project,
            name=settings.name,
            entity=settings.entity,
            config=_config(spec),
            # The job id names the run, so a job resumed after an engine restart carries on
            # logging to the same run instead of starting a second one.
            id=spec.job_id,
            resume="allow",
            # W&B's local files go with the job's, not into the engine's working folder.
            dir=str(spec.output_dir),
        )
    except Exception as exc:
        return _unavailable(emit, f"W&B could not start a run ({_reason(exc)})")
    tracker = WandbTracker(run, emit)
    _open.append(tracker)
    emit(NoticeEvent(message=f"Logging metrics to W&B: {redact(_where(run, settings.project))}."))
    return tracker
