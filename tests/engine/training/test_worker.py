"""The worker process speaks the protocol: JSON lines on stdout, nothing else there."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.engine.training.conftest import sample_records, write_jsonl

REPO_ROOT = Path(__file__).resolve().parents[3]


def start_worker(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "engine.training.worker", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )


def save(spec, path: Path) -> Path:
    path.write_text(spec.model_dump_json())
    return path


def parse(stdout: str) -> list[dict]:
    # Every stdout line must be one JSON object: json.loads fails the test otherwise.
    return [json.loads(line) for line in stdout.splitlines()]


def failed_run(spec, tmp_path: Path) -> list[dict]:
    """The lines of a worker run on `spec` (its path as an argument) that exits non-zero."""
    worker = start_worker(str(save(spec, tmp_path / "spec.json")))
    stdout, _ = worker.communicate(timeout=120)
    assert worker.returncode != 0
    return parse(stdout)


def test_a_spec_given_on_stdin_trains_and_ends_with_succeeded(make_spec, tmp_path: Path):
    spec_path = save(make_spec(hyperparameters={"n_epochs": 1}), tmp_path / "spec.json")
    worker = start_worker()
    stdout, stderr = worker.communicate(str(spec_path) + "\n", timeout=120)
    lines = parse(stdout)
    assert worker.returncode == 0, stderr
    # The validation file's loss on the untrained model comes before the first step.
    assert [line["type"] for line in lines][:4] == [
        "dataset",
        "started",
        "base_evaluation",
        "progress",
    ]
    assert lines[-1] == {
        "type": "succeeded",
        "trained_tokens": lines[0]["tokens"],
        "trained_steps": 3,
    }
    checkpoint = next(line for line in lines if line["type"] == "checkpoint")
    assert checkpoint["files"] == ["adapter_model.safetensors", "adapter_config.json"]


def test_a_bad_dataset_fails_with_a_clean_reason(make_spec, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert failed_run(make_spec(training_file=bad), tmp_path) == [
        {
            "type": "failed",
            "code": "bad_dataset",
            "reason": "bad.jsonl, line 1: the last message must come from the assistant",
        }
    ]


def test_an_unknown_model_fails_with_model_not_found(make_spec, tmp_path: Path):
    [failed] = failed_run(make_spec(model="nobody/nothing"), tmp_path)
    assert failed["code"] == "model_not_found"
    assert "'nobody/nothing' not found" in failed["reason"]
    assert "Traceback" not in failed["reason"]


def test_sigterm_stops_a_running_job_promptly(make_spec, tmp_path: Path):
    train = write_jsonl(tmp_path / "big.jsonl", sample_records(40) * 50)
    spec = make_spec(training_file=train, hyperparameters={"n_epochs": 20, "batch_size": 2})
    worker = start_worker(str(save(spec, tmp_path / "spec.json")))
    assert worker.stdout is not None
    while json.loads(worker.stdout.readline())["type"] != "progress":
        pass
    worker.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    worker.wait(timeout=10)
    assert time.monotonic() - sent < 5
    assert worker.returncode != 0
    rest = parse(worker.stdout.read())
    assert all(line["type"] in ("progress", "epoch", "checkpoint") for line in rest)


def test_running_out_of_memory_is_reported_as_such():
    import torch

    from engine.training.worker import _failure

    for error in (
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    ):
        failed = _failure(error)
        assert failed.code == "out_of_memory"
        assert "smaller batch_size" in failed.reason
    assert _failure(ValueError("boom")).model_dump() == {
        "type": "failed",
        "code": "internal_error",
        "reason": "ValueError: boom",
    }


def test_resuming_from_a_folder_without_resume_state_fails_cleanly(make_spec, tmp_path: Path):
    missing = tmp_path / "checkpoints" / "step-3"
    missing.mkdir(parents=True)
    assert failed_run(make_spec(resume_from=missing), tmp_path) == [
        {
            "type": "failed",
            "code": "file_error",
            "reason": f"no resumable checkpoint (trainer_state.pt missing): {missing}",
        }
    ]
