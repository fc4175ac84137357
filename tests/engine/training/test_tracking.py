"""W&B logging from the training loop, with a fake `wandb` module: what is logged, at which
steps, and that neither a missing package nor a failing W&B stops a job or leaks the key."""

import hashlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.training import loop, tracking
from engine.training.events import (
    BaseEvaluationEvent,
    EpochEvent,
    NoticeEvent,
    ProgressEvent,
    SucceededEvent,
)
from engine.training.spec import TrainSpec, WandbSpec
from tests.engine.training.test_worker import REPO_ROOT, parse, save

KEY = "wandb-secret-0123456789abcdef"
PROGRESS = [
    "train/epoch",
    "train/learning_rate",
    "train/loss",
    "train/tokens_per_second",
    "train/trained_tokens",
]
EPOCH = ["epoch/train_loss", "epoch/valid_loss", "train/epoch"]


class FakeRun:
    url = "https://wandb.example/team/xgen/runs/ftjob-job"

    def __init__(self, settings: dict[str, Any], fail_log_at: int | None) -> None:
        self.settings = settings
        self.fail_log_at = fail_log_at
        self.logged: list[tuple[int, dict[str, float]]] = []
        self.finished: list[int] = []

    def log(self, metrics: dict[str, float], step: int) -> None:
        if step == self.fail_log_at:
            raise ConnectionError(f"api.wandb.ai unreachable (key {KEY})")
        self.logged.append((step, dict(metrics)))

    def finish(self, exit_code: int = 0) -> None:
        self.finished.append(exit_code)


class FakeWandb(types.ModuleType):
    """What the loop uses of `wandb`: init, and the run's log and finish."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.runs: list[FakeRun] = []
        self.init_error: Exception | None = None
        self.fail_log_at: int | None = None
        self.init_timeouts: list[str | None] = []

    def init(self, **settings: Any) -> FakeRun:
        # What wandb itself reads for how long to wait for W&B.
        self.init_timeouts.append(os.environ.get("WANDB_INIT_TIMEOUT"))
        if self.init_error is not None:
            raise self.init_error
        run = FakeRun(settings, self.fail_log_at)
        self.runs.append(run)
        return run


@pytest.fixture(autouse=True)
def progress_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "PROGRESS_EVERY_S", 0.0)


@pytest.fixture
def fake_wandb(monkeypatch: pytest.MonkeyPatch) -> FakeWandb:
    module = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    # Removed now and again after the test: the tracker sets it in this process.
    monkeypatch.delenv("WANDB_INIT_TIMEOUT", raising=False)
    return module


def wandb_spec(make_spec, **fields: Any) -> TrainSpec:
    return make_spec(wandb=WandbSpec(project="xgen", name="run-1", entity="team"), **fields)


def run_job(spec: TrainSpec) -> list:
    events: list = []
    loop.train(spec, events.append)
    return events


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def test_a_lora_job_logs_its_metrics_to_wandb_and_finishes_the_run(make_spec, fake_wandb):
    spec = wandb_spec(make_spec)  # 10 examples, batches of 4, 2 epochs: 6 steps
    events = run_job(spec)

    [run] = fake_wandb.runs
    assert {k: run.settings[k] for k in ("project", "name", "entity", "id")} == {
        "project": "xgen",
        "name": "run-1",
        "entity": "team",
        "id": spec.job_id,
    }
    config = run.settings["config"]
    assert config["lora"] is True and config["learning_rate"] == 1e-2
    assert config["model"] == "tiny-llama" and config["seed"] == spec.seed
    assert [(step, sorted(metrics)) for step, metrics in run.logged] == [
        (0, ["epoch/valid_loss", "train/epoch"]),  # the model before training
        (1, PROGRESS),
        (2, PROGRESS),
        (3, PROGRESS),
        (3, EPOCH),
        (4, PROGRESS),
        (5, PROGRESS),
        (6, PROGRESS),
        (6, EPOCH),
    ]
    progress = of(events, ProgressEvent)
    logged = [m for _, m in run.logged if "train/loss" in m]
    assert [m["train/loss"] for m in logged] == [e.loss for e in progress]
    assert [m["train/learning_rate"] for m in logged] == [e.learning_rate for e in progress]
    epochs = of(events, EpochEvent)
    valid = [m["epoch/valid_loss"] for _, m in run.logged if "epoch/valid_loss" in m]
    [base] = of(events, BaseEvaluationEvent)
    assert valid == [base.valid_loss, *(e.valid_loss for e in epochs)]
    assert run.finished == [0]
    assert isinstance(events[-1], SucceededEvent)

    [notice] = of(events, NoticeEvent)
    assert notice.message == f"Logging metrics to W&B: {FakeRun.url}."
    assert KEY not in spec.model_dump_json()
    assert KEY not in json.dumps(run.settings)
    assert not any(KEY in e.model_dump_json() for e in events)


def test_without_wandb_installed_the_job_trains_and_says_so_once(make_spec, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    events = run_job(wandb_spec(make_spec, hyperparameters={"n_epochs": 1}))
    assert isinstance(events[-1], SucceededEvent)
    [notice] = of(events, NoticeEvent)
    assert notice.level == "warn"
    assert notice.message == (
        "W&B logging was requested but the wandb package is not installed where the engine "
        "runs: metrics are in the job's events."
    )


def test_a_run_that_cannot_start_leaves_training_alone_and_the_reason_has_no_key(
    make_spec, fake_wandb
):
    fake_wandb.init_error = PermissionError(f"API key {KEY} is not valid")
    events = run_job(wandb_spec(make_spec, hyperparameters={"n_epochs": 1}))
    assert isinstance(events[-1], SucceededEvent)
    [notice] = of(events, NoticeEvent)
    assert notice.message == (
        "W&B logging was requested but W&B could not start a run (PermissionError: API key "
        "[redacted] is not valid): metrics are in the job's events."
    )


def test_w_and_b_gets_a_short_time_to_start_and_a_timeout_is_said_once(make_spec, fake_wandb):
    # wandb's own wait is 90 s, and the job would wait with it.
    fake_wandb.init_error = TimeoutError("Run initialization has timed out after 20.0 sec.")
    events = run_job(wandb_spec(make_spec, hyperparameters={"n_epochs": 1}))
    assert fake_wandb.init_timeouts == [str(tracking.INIT_TIMEOUT_S)] == ["20"]
    assert isinstance(events[-1], SucceededEvent)
    [notice] = of(events, NoticeEvent)
    assert notice.level == "warn"
    assert notice.message == (
        "W&B logging was requested but W&B could not start a run (TimeoutError: Run "
        "initialization has timed out after 20.0 sec.): metrics are in the job's events."
    )


def test_an_operators_own_wandb_init_timeout_is_kept(make_spec, fake_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "300")
    run_job(wandb_spec(make_spec, hyperparameters={"n_epochs": 1}))
    assert fake_wandb.init_timeouts == ["300"]


def test_an_error_while_logging_stops_wandb_once_and_training_goes_on(make_spec, fake_wandb):
    fake_wandb.fail_log_at = 2
    events = run_job(wandb_spec(make_spec))
    assert isinstance(events[-1], SucceededEvent)
    [run] = fake_wandb.runs
    assert [step for step, _ in run.logged] == [0, 1]  # the base figure, then step 1
    assert run.finished == [1]
    started, stopped = of(events, NoticeEvent)
    assert started.message.startswith("Logging metrics to W&B")
    assert stopped.level == "warn"
    assert stopped.message == (
        "W&B logging stopped at step 2 (ConnectionError: api.wandb.ai unreachable (key "
        "[redacted])): metrics are in the job's events."
    )


def test_a_job_without_wandb_opens_no_run_and_says_nothing(make_spec, fake_wandb):
    events: list = []
    assert isinstance(tracking.open_tracker(make_spec(), events.append), tracking.NullTracker)
    assert events == [] and fake_wandb.runs == []


def test_a_failing_or_cancelled_worker_finishes_the_open_run_with_its_exit_code(
    make_spec, fake_wandb
):
    tracker = tracking.open_tracker(wandb_spec(make_spec), lambda event: None)
    tracking.finish_open(143)
    tracking.finish_open(1)  # nothing is left open
    tracker.finish()
    assert fake_wandb.runs[0].finished == [143]


def test_specs_without_wandb_stay_valid_and_a_key_has_no_place_in_one(make_spec):
    data = json.loads(make_spec().model_dump_json())
    del data["wandb"]
    assert TrainSpec.model_validate(data).wandb is None
    data["wandb"] = {"project": "xgen", "api_key": KEY}
    with pytest.raises(ValidationError):
        TrainSpec.model_validate(data)


FAKE_PACKAGE = '''
"""A stand-in for wandb in a worker process: records what it is given in FAKE_WANDB_RECORD."""
import hashlib, json, os

class _Run:
    url = "https://wandb.example/run"

    def __init__(self, settings):
        key = os.environ.get("WANDB_API_KEY")
        self.record = {
            "init": settings,
            "key_sha256": hashlib.sha256(key.encode()).hexdigest() if key else None,
            "logged": [],
            "finished": [],
        }

    def _save(self):
        with open(os.environ["FAKE_WANDB_RECORD"], "w") as handle:
            json.dump(self.record, handle)

    def log(self, metrics, step):
        self.record["logged"].append([step, sorted(metrics)])
        self._save()

    def finish(self, exit_code=0):
        self.record["finished"].append(exit_code)
        self._save()

def init(**settings):
    return _Run(settings)
'''


def test_the_worker_process_logs_with_the_key_from_its_environment_only(make_spec, tmp_path: Path):
    fakes = tmp_path / "fakes"
    (fakes / "wandb").mkdir(parents=True)
    (fakes / "wandb" / "__init__.py").write_text(FAKE_PACKAGE)
    record = tmp_path / "wandb-record.json"
    spec_path = save(wandb_spec(make_spec, hyperparameters={"n_epochs": 1}), tmp_path / "s.json")
    env = {
        **os.environ,
        "PYTHONPATH": f"{fakes}{os.pathsep}{REPO_ROOT}",
        "WANDB_API_KEY": KEY,
        "FAKE_WANDB_RECORD": str(record),
    }
    worker = subprocess.run(
        [sys.executable, "-m", "engine.training.worker", str(spec_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr
    lines = parse(worker.stdout)
    assert lines[-1]["type"] == "succeeded"
    notices = [line["message"] for line in lines if line["type"] == "notice"]
    assert notices == ["Logging metrics to W&B: https://wandb.example/run."]
    seen = json.loads(record.read_text())
    assert seen["key_sha256"] == hashlib.sha256(KEY.encode()).hexdigest()
    assert seen["init"]["project"] == "xgen" and seen["init"]["entity"] == "team"
    steps = [step for step, _ in seen["logged"]]
    # The base figure, the first progress report ... the last one, then the epoch's.
    assert steps[:2] == [0, 1] and steps[-2:] == [3, 3]
    assert seen["finished"] == [0]
    assert KEY not in worker.stdout + worker.stderr + spec_path.read_text()
