"""How long from `POST fine_tuning/jobs` to the job's first training event, on the built-in model.

The engine runs in this process (EmbeddedEngine) with the real worker. Each run creates a
one-epoch LoRA job on samples/sample_training_data.jsonl, times it until the first
`started` or `progress` event, then cancels it. Two configurations in the same run:
- cold: each job's worker process starts from scratch (imports torch and transformers);
- warm: the engine keeps one worker ready with its imports done (the `serve` default).
The built-in model is converted from its GGUF file once, before timing (the conversion's
own time is printed). Also measured: the engine's peak memory while it receives an upload,
against its size (uploads stream to disk).

    .venv/bin/python -m bench.engine_startup [--runs 3] [--upload-mb 200]
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from engine.model_registry import BUILTIN_MODEL_ID, ensure_builtin
from engine.server import EmbeddedEngine

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "sample_training_data.jsonl"
DATA_DIR = REPO / "bench" / "out" / "engine-startup"
# A warm worker is replaced after each job; give the next one time to finish its imports.
WARM_SETTLE_S = 15.0
POLL_S = 0.01
TIMEOUT_S = 300.0


def _until(check, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(POLL_S)
    raise RuntimeError(f"timed out waiting for {what}")


def _first_step_seconds(http: httpx.Client, file_id: str) -> float:
    start = time.perf_counter()
    job = http.post(
        "fine_tuning/jobs",
        json={
            "model": BUILTIN_MODEL_ID,
            "training_file": file_id,
            "hyperparameters": {"n_epochs": 1, "lora": True, "batch_size": 2},
        },
    ).json()
    job_id = job["id"]

    def first_event():
        events = http.get(f"fine_tuning/jobs/{job_id}/events", params={"limit": 100}).json()
        for event in events["data"]:
            if event["message"].startswith(("Training started", "Step ")):
                return True
        status = http.get(f"fine_tuning/jobs/{job_id}").json()
        if status["status"] == "failed":
            raise RuntimeError(f"the job failed: {status['error']}")
        return False

    _until(first_event, "the first training event")
    elapsed = time.perf_counter() - start
    http.post(f"fine_tuning/jobs/{job_id}/cancel")
    return elapsed


def _startup(runs: int, warm: bool) -> list[float]:
    times = []
    with (
        EmbeddedEngine(DATA_DIR, warm_worker=warm, device="cpu") as engine,
        httpx.Client(base_url=engine.base_url + "/", timeout=60) as http,
    ):
        with open(SAMPLE, "rb") as handle:
            uploaded = http.post(
                "files", files={"file": ("train.jsonl", handle)}, data={"purpose": "fine-tune"}
            ).json()
        _until(
            lambda: http.get(f"files/{uploaded['id']}").json()["status"] == "processed",
            "the file to be processed",
        )
        for _ in range(runs):
            if warm:
                time.sleep(WARM_SETTLE_S)
            times.append(_first_step_seconds(http, uploaded["id"]))
    return times


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak (VmHWM) to the current size.
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _upload_memory(size_mb: int) -> tuple[float, float]:
    """(memory before, peak during) in MB while the embedded engine receives `size_mb`."""
    line = (
        b'{"messages": [{"role": "user", "content": "hi"}, '
        b'{"role": "assistant", "content": "ok"}]}\n'
    )
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.jsonl"
        with open(big, "wb") as out:
            chunk = line * (1024 * 1024 // len(line))
            for _ in range(size_mb):
                out.write(chunk)
        with (
            EmbeddedEngine(Path(tmp) / "engine") as engine,
            httpx.Client(base_url=engine.base_url + "/", timeout=600) as http,
        ):
            _reset_peak_rss()
            before = _peak_rss_mb()

            def body():
                with open(big, "rb") as handle:
                    while piece := handle.read(1024 * 1024):
                        yield piece

            boundary = "benchboundary"
            head = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
                f"fine-tune\r\n--{boundary}\r\nContent-Disposition: form-data; "
                f'name="file"; filename="big.jsonl"\r\n\r\n'
            ).encode()

            def multipart():
                yield head
                yield from body()
                yield f"\r\n--{boundary}--\r\n".encode()

            response = http.post(
                "files",
                content=multipart(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            response.raise_for_status()
            after = _peak_rss_mb()
    return before, after


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.engine_startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--upload-mb", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    ensure_builtin(DATA_DIR / "models")
    print(f"built-in model ready in {time.perf_counter() - start:.1f}s (converted once, cached)")

    cold = _startup(args.runs, warm=False)
    warm = _startup(args.runs, warm=True)
    cold_median, warm_median = statistics.median(cold), statistics.median(warm)
    print(f"job created -> first training event, {args.runs} runs each, median:")
    print(f"  cold worker: {cold_median:.2f}s  (runs: {', '.join(f'{t:.2f}' for t in cold)})")
    print(f"  warm worker: {warm_median:.2f}s  (runs: {', '.join(f'{t:.2f}' for t in warm)})")
    print(
        f"  warm/cold: {warm_median / cold_median:.2f}; goal < 5 s: "
        f"{'met' if warm_median < 5 else 'NOT met'}"
    )

    if args.upload_mb:
        before, after = _upload_memory(args.upload_mb)
        print(
            f"upload of {args.upload_mb} MB: engine process memory {before:.0f} MB before, "
            f"peak {after:.0f} MB while receiving it (+{after - before:.0f} MB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
