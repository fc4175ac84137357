"""A stand-in for `engine.training.worker` that speaks the worker protocol without training.

Run as `python fake_worker.py [--mode MODE] [SPEC_PATH]`; with no SPEC_PATH it reads the path
from stdin, as a warm worker does. Modes:
- ok: a stray non-JSON line, then dataset, started, progress, epoch and checkpoint lines
  (2 steps per epoch), succeeded; with a validation file and no checkpoint to resume from,
  a base_evaluation line (BASE_VALID_LOSS) before the first step, and that figure in its
  checkpoints' metrics (a resumed fake, having no resume state, leaves it out)
- gate: waits for a file named `go` in the output folder, then behaves as ok
- hold-after-checkpoint: saves the first epoch's checkpoint, then waits to be stopped
- crash: logs a line to stderr and exits with code 3
- killed: emits a library-style warning (its stderr then ends with `  warnings.warn(`), then
  kills itself with SIGKILL, as the kernel's OOM killer would
- fail: reports a failure of its own ("failed" line)
- stubborn: ignores SIGTERM and waits (the server must escalate to SIGKILL)
- truncate: as ok, and reports truncated and dropped examples
- leak: a careless worker: quotes WANDB_API_KEY in a notice and on stderr, then exits with 3

Every mode writes `spec_seen.json` (the spec) and `env_seen.json` (a hash of the
WANDB_API_KEY it was started with, never the key) in the output folder.
"""

import hashlib
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

STEPS_PER_EPOCH = 2
# The validation loss the fake "measures" before training.
BASE_VALID_LOSS = 3.57
POLL_S = 0.01


def emit(**message: object) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def emit_started(model: str, total_steps: int, epochs: int, resumed_from_step: int | None) -> None:
    emit(
        type="started",
        device="cpu",
        dtype="float32",
        model=model,
        trainable_parameters=10,
        total_parameters=100,
        total_steps=total_steps,
        epochs=epochs,
        resumed_from_step=resumed_from_step,
    )


def wait_forever() -> None:
    while True:
        time.sleep(POLL_S)


def main() -> int:
    args = sys.argv[1:]
    mode = "ok"
    if args[:1] == ["--mode"]:
        mode, args = args[1], args[2:]
    via = "argv" if args else "stdin"
    spec_path = args[0] if args else sys.stdin.readline().strip()
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["output_dir"])
    (out / "spec_seen.json").write_text(json.dumps(spec))
    key = os.environ.get("WANDB_API_KEY")
    digest = hashlib.sha256(key.encode()).hexdigest() if key is not None else None
    (out / "env_seen.json").write_text(json.dumps({"wandb_key_sha256": digest}))
    print(
        f"fake worker for {spec['job_id']} in mode {mode} (spec from {via})",
        file=sys.stderr,
        flush=True,
    )

    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        emit_started(spec["model"], total_steps=2, epochs=1, resumed_from_step=None)
        wait_forever()
    if mode == "gate":
        while not (out / "go").exists():
            time.sleep(POLL_S)
    if mode == "crash":
        print("RuntimeError: the fake trainer broke", file=sys.stderr, flush=True)
        return 3
    if mode == "killed":
        # Split over lines as libraries write it: Python echoes only `warnings.warn(`.
        warnings.warn(
            "the fake trainer's API is deprecated",
            FutureWarning,
            stacklevel=1,
        )
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "leak":
        emit(type="notice", level="warn", message=f"W&B refused the key {key}")
        print(f"wandb.errors.AuthenticationError: bad key {key}", file=sys.stderr, flush=True)
        return 3
    if mode == "fail":
        emit(type="failed", code="bad_dataset", reason="line 3: no assistant message to learn from")
        return 1

    # A stray line that is not the protocol's: the engine must skip it.
    sys.stdout.write("loading the fake model...\n")
    sys.stdout.flush()
    lines = Path(spec["training_file"]).read_text().splitlines()
    examples = len([line for line in lines if line.strip()])
    epochs = int(spec["hyperparameters"]["n_epochs"])
    total = epochs * STEPS_PER_EPOCH
    emit(
        type="dataset",
        examples=examples,
        validation_examples=0,
        tokens=examples * 50,
        truncated=2 if mode == "truncate" else 0,
        dropped=1 if mode == "truncate" else 0,
        context_length=spec["hyperparameters"]["context_length"],
        message="longest example: 9000 tokens" if mode == "truncate" else "",
    )
    first_epoch = 1
    resumed = None
    if spec.get("resume_from"):
        resumed = int(Path(spec["resume_from"]).name.removeprefix("step-"))
        first_epoch = resumed // STEPS_PER_EPOCH + 1
    emit_started(spec["model"], total_steps=total, epochs=epochs, resumed_from_step=resumed)
    base = None
    if spec.get("validation_file") and resumed is None:
        base = BASE_VALID_LOSS
        emit(type="base_evaluation", valid_loss=base)
    tokens = 0
    for epoch in range(first_epoch, epochs + 1):
        for i in range(1, STEPS_PER_EPOCH + 1):
            step = (epoch - 1) * STEPS_PER_EPOCH + i
            tokens += 100
            emit(
                type="progress",
                step=step,
                total_steps=total,
                epoch=epoch,
                loss=2.0 / step,
                learning_rate=1e-5,
                tokens_per_second=1000.0,
                trained_tokens=tokens,
                eta_seconds=float(total - step),
            )
        step = epoch * STEPS_PER_EPOCH
        emit(type="epoch", epoch=epoch, step=step, train_loss=1.0 / epoch, valid_loss=None)
        ckpt = out / "checkpoints" / f"step-{step}"
        ckpt.mkdir(parents=True, exist_ok=True)
        (ckpt / "adapter_model.safetensors").write_bytes(f"weights at step {step}".encode())
        (ckpt / "adapter_config.json").write_text(json.dumps({"r": 8}))
        (ckpt / "optimizer.pt").write_bytes(b"resume state")
        emit(
            type="checkpoint",
            step=step,
            epoch=epoch,
            path=str(ckpt),
            files=["adapter_model.safetensors", "adapter_config.json"],
            metrics={"train_loss": 1.0 / epoch, "valid_loss": None, "base_valid_loss": base},
        )
        if mode == "hold-after-checkpoint" and resumed is None:
            wait_forever()
    emit(type="succeeded", trained_tokens=tokens, trained_steps=total)
    return 0


if __name__ == "__main__":
    sys.exit(main())
