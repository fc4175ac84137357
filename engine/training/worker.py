"""The process that runs one training job: `python -m engine.training.worker [SPEC_PATH]`.

With SPEC_PATH it trains that spec. Without it, it imports the training stack first
and then waits for one line on stdin holding the spec path, so a server can keep a
warm worker ready. Protocol lines (engine.training.events) go to stdout, one JSON
object per line; everything else (logs, tracebacks) goes to stderr.
"""

import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import TextIO

from pydantic import ValidationError

from engine.training.events import Event, FailedEvent
from engine.training.tracking import finish_open, redact

log = logging.getLogger("engine.training.worker")


class Cancelled(BaseException):
    """Raised from the SIGTERM handler; a BaseException so no `except Exception` swallows it."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Cancelled()


def _emitter(out: TextIO):
    def emit(event: Event) -> None:
        # The W&B key is in this process's environment; no protocol line may carry it.
        out.write(redact(event.model_dump_json()) + "\n")
        out.flush()

    return emit


def _failure(exc: BaseException) -> FailedEvent:
    """A clean code and reason for what went wrong; the traceback goes to stderr only."""
    import torch

    from engine.model_registry import ModelNotFoundError
    from engine.training.data import DatasetError

    # The CPU allocator reports failure as a RuntimeError ("can't allocate memory").
    cpu_oom = isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    if cpu_oom or isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return FailedEvent(
            code="out_of_memory",
            reason="training ran out of memory: try a smaller batch_size or context_length, "
            "or lora=true",
        )
    if isinstance(exc, DatasetError):
        return FailedEvent(code="bad_dataset", reason=str(exc))
    if isinstance(exc, ModelNotFoundError):
        return FailedEvent(code="model_not_found", reason=str(exc))
    if isinstance(exc, ValidationError):
        return FailedEvent(code="bad_spec", reason=f"invalid training spec: {exc}")
    if isinstance(exc, FileNotFoundError | PermissionError):
        return FailedEvent(code="file_error", reason=f"{exc.strerror or exc}: {exc.filename}")
    return FailedEvent(code="internal_error", reason=f"{type(exc).__name__}: {exc}")


def run(spec_path: Path | None, stdin: TextIO, out: TextIO) -> int:
    """Train one spec; the exit status the process should end with."""
    emit = _emitter(out)
    # Imported before reading stdin, so a warm worker has paid for torch and transformers.
    from engine.training.loop import train
    from engine.training.spec import TrainSpec

    if spec_path is None:
        line = stdin.readline().strip()
        if not line:
            emit(FailedEvent(code="bad_spec", reason="no spec path on stdin"))
            return 2
        spec_path = Path(line)
    try:
        spec = TrainSpec.from_file(spec_path)
        spec.output_dir.mkdir(parents=True, exist_ok=True)
        train(spec, emit)
    except Cancelled:
        log.warning("cancelled by SIGTERM")
        finish_open(128 + signal.SIGTERM)
        return 128 + signal.SIGTERM
    except Exception as exc:
        sys.stderr.write(redact(traceback.format_exc()))
        emit(_failure(exc))
        finish_open(1)
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    # Libraries may print to stdout (progress bars, warnings); the protocol owns it.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = run(Path(args[0]) if args else None, sys.stdin, protocol)
    except Cancelled:
        code = 128 + signal.SIGTERM
    protocol.flush()
    # Skip interpreter teardown: exiting promptly matters more than tidy module cleanup.
    os._exit(code)


if __name__ == "__main__":
    main()
