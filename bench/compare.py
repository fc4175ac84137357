"""`finetune compare` end to end on the local engine: the built-in model against a LoRA of it.

The engine runs in this process (EmbeddedEngine) with its real worker. First a one-epoch LoRA
job is trained on samples/sample_training_data.jsonl, with samples/sample_validation_data.jsonl
as its validation file (timed on its own). Then `finetune compare JOB` runs as a user would
run it (the CLI's `main`, JSON output): it reads the job, chooses the best checkpoint as the
fine-tuned model, downloads the validation file, and sends its 5 prompts through the base model
and the fine-tuned one (10 greedy generations), scoring every answer. Runs alternate between
concurrency 1 and 2; the first run of all also loads both models into the engine and is
reported on its own (cold), the medians are over the runs after it (warm).

    .venv/bin/python -m bench.compare [--runs 3] [--concurrency 1,2] [--max-tokens N] [--job ID]

`--job` reuses a succeeded job of an earlier run (the engine's data stays in bench/out/compare)
instead of training again: the compare timings alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "bench" / "out" / "compare"
TRAINING = REPO / "samples" / "sample_training_data.jsonl"
VALIDATION = REPO / "samples" / "sample_validation_data.jsonl"
GOAL_S = 60.0
TRAIN_TIMEOUT_S = 1800.0


def _upload(http: httpx.Client, path: Path) -> str:
    with path.open("rb") as stream:
        answer = http.post(
            "files", files={"file": (path.name, stream)}, data={"purpose": "fine-tune"}
        )
    answer.raise_for_status()
    return answer.json()["id"]


def _train(http: httpx.Client, model: str) -> tuple[str, float]:
    """A succeeded one-epoch LoRA job's id, and how long it took from creation."""
    training, validation = _upload(http, TRAINING), _upload(http, VALIDATION)
    start = time.perf_counter()
    created = http.post(
        "fine_tuning/jobs",
        json={
            "model": model,
            "training_file": training,
            "validation_file": validation,
            "hyperparameters": {
                "n_epochs": 1,
                "lora": True,
                "batch_size": 2,
                "learning_rate": 2e-4,
                "lora_r": 8,
                "lora_alpha": 16,
            },
            "suffix": "bench-compare",
        },
    )
    created.raise_for_status()
    job_id = created.json()["id"]
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        job = http.get(f"fine_tuning/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"training {job['status']}: {job.get('error')}")
            return job_id, time.perf_counter() - start
        time.sleep(0.5)
    raise RuntimeError("training did not finish in time")


def _compare(
    job_id: str, concurrency: int, max_tokens: int | None
) -> tuple[float, int, dict[str, Any]]:
    """(seconds, exit code, the JSON result) of one `finetune compare JOB --json`."""
    from client.cli import finetune

    out, err = io.StringIO(), io.StringIO()
    argv = ["compare", job_id, "--json", "--no-progress", "--concurrency", str(concurrency)]
    if max_tokens is not None:
        argv += ["--max-tokens", str(max_tokens)]
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = finetune.main(argv)
    seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"finetune compare failed ({code}): {err.getvalue() or out.getvalue()}")
    return seconds, code, json.loads(out.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.compare")
    parser.add_argument("--runs", type=int, default=3, help="warm runs per concurrency")
    parser.add_argument("--concurrency", default="1,2", help="comma-separated, e.g. 1,2")
    parser.add_argument(
        "--max-tokens", type=int, default=None, help="as `finetune compare --max-tokens`"
    )
    parser.add_argument("--job", default=None, help="a succeeded job to reuse: no training")
    args = parser.parse_args()
    levels = [int(v) for v in args.concurrency.split(",") if v.strip()]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from client.compare import CompareResult, render_table
    from engine.model_registry import BUILTIN_MODEL_ID, ensure_builtin
    from engine.server import EmbeddedEngine

    started = time.perf_counter()
    ensure_builtin(DATA_DIR / "models")
    print(f"built-in model ready in {time.perf_counter() - started:.1f} s", flush=True)
    with EmbeddedEngine(DATA_DIR, device="cpu") as engine:
        os.environ["NEBIUS_BASE_URL"] = engine.base_url
        os.environ["NEBIUS_API_KEY"] = "unused"
        if args.job:
            job_id = args.job
            print(f"reusing {job_id} (no training)", flush=True)
        else:
            with httpx.Client(base_url=engine.base_url + "/", timeout=600) as http:
                job_id, trained = _train(http, BUILTIN_MODEL_ID)
            print(f"1-epoch LoRA on 10 examples: {trained:.1f} s ({job_id})", flush=True)
        print(
            f"{torch.get_num_threads()} torch threads; compare = 5 prompts x 2 models", flush=True
        )

        cold, _, first = _compare(job_id, levels[0], args.max_tokens)
        print(f"cold run (loads both models), concurrency {levels[0]}: {cold:.1f} s", flush=True)
        times: dict[int, list[float]] = {level: [] for level in levels}
        last: dict[str, Any] = first
        for number in range(1, args.runs + 1):
            for level in levels if number % 2 else list(reversed(levels)):
                seconds, _, last = _compare(job_id, level, args.max_tokens)
                times[level].append(seconds)
                print(f"run {number}, concurrency {level}: {seconds:.1f} s", flush=True)
    print()
    for level, values in times.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.1f}" for v in values)
        goal = "under" if median < GOAL_S else "OVER"
        print(f"concurrency {level}: median {median:.1f} s ({runs}); {goal} {GOAL_S:.0f} s")
    result = CompareResult.model_validate(last)
    print()
    print(render_table(result))
    slowest = max(statistics.median(v) for v in times.values())
    return 0 if max(slowest, cold) < GOAL_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
