"""The engine's side of a worker process: start it, keep one warm, stop it, say why it ended.

The code that runs inside the process is `engine.training.worker`; this module only
handles it from outside. A worker's stdout is the protocol (one JSON object per line);
its stderr goes to a log file, from which the reason for an unexplained exit is quoted.
"""

import asyncio
import contextlib
import logging
import os
import re
import signal
from pathlib import Path

from engine.worker_messages import REASON_CHARS, scrub

log = logging.getLogger("engine.worker_processes")

# Longest stdout line read from a worker; the protocol's lines are far shorter.
LINE_LIMIT = 1024 * 1024
# The variable W&B reads its API key from.
WANDB_KEY_ENV = "WANDB_API_KEY"
# How much of the end of a worker's log is read for the line to quote.
LOG_TAIL_BYTES = 8192

Process = asyncio.subprocess.Process


async def spawn(
    args: list[str], log_path: Path, *, warm: bool, env: dict[str, str] | None = None
) -> Process:
    """Starts a worker; a warm one keeps stdin open to be sent its spec path later."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        return await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if warm else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
            limit=LINE_LIMIT,
            env=env,
            # Its own session: a Ctrl-C in the engine's terminal reaches the engine, which
            # then stops its workers itself.
            start_new_session=True,
        )


def worker_env(wandb_key: str | None) -> dict[str, str] | None:
    """The environment of a job's worker: the engine's, plus the job's own W&B key."""
    if wandb_key is None:
        return None  # inherit
    return {**os.environ, WANDB_KEY_ENV: wandb_key}


def terminate(process: Process) -> None:
    """Asks a worker to stop (SIGTERM): it saves nothing more and exits."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)


async def reap(process: Process, grace_seconds: float) -> None:
    """Waits for a worker to exit; SIGKILL for it and its children after the grace period."""
    try:
        await asyncio.wait_for(process.wait(), grace_seconds)
    except TimeoutError:
        # Its whole process group: anything it started goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def kill_orphan(pid: int, markers: list[str]) -> None:
    """Kills a worker left by an engine that died, if `pid` is still one of ours."""
    if _pid_is_worker(pid, markers):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def _pid_is_worker(pid: int, markers: list[str]) -> bool:
    # A pid may have been reused since: only a command line with one of `markers` is ours.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return any(marker.encode() in cmdline for marker in markers if marker)


class WarmWorker:
    """At most one worker started ahead of its job: imports done, waiting for a spec path.

    Its log is a dot-file in `folder` until a job takes it; then it is renamed to the job's.
    """

    def __init__(self, command: list[str], folder: Path, grace_seconds: float) -> None:
        self._command = command
        self._folder = folder
        self._grace = grace_seconds
        self._process: Process | None = None
        self._log_path: Path | None = None
        self._seq = 0

    @property
    def ready(self) -> bool:
        return self._process is not None

    async def start(self) -> None:
        self._seq += 1
        log_path = self._folder / f".warm-{os.getpid()}-{self._seq}.log"
        log_path.unlink(missing_ok=True)
        self._process = await spawn(list(self._command), log_path, warm=True)
        self._log_path = log_path

    async def take(self, spec_path: Path, log_path: Path) -> Process | None:
        """The warm worker, sent `spec_path` and logging to `log_path`; None if it is gone."""
        process, warm_log = self._process, self._log_path
        self._process = self._log_path = None
        if process is None or warm_log is None:
            return None
        if process.returncode is not None or process.stdin is None:
            log.warning(
                "the warm worker had exited (%s): %s",
                process.returncode,
                quoted_log_line(warm_log),
            )
            warm_log.unlink(missing_ok=True)
            return None
        try:
            process.stdin.write(f"{spec_path}\n".encode())
            await process.stdin.drain()
            process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            warm_log.unlink(missing_ok=True)
            return None
        # Its log belongs to this job now; the worker keeps writing to the renamed file.
        warm_log.rename(log_path)
        return process

    async def stop(self) -> None:
        process, warm_log = self._process, self._log_path
        self._process = self._log_path = None
        if process is not None:
            terminate(process)
            await reap(process, self._grace)
        if warm_log is not None:
            warm_log.unlink(missing_ok=True)


# Why a worker ended

# `path/to/file.py:12: SomeWarning: text`, as `warnings.showwarning` writes a warning; the
# next indented line is the source line it came from (often just `warnings.warn(`).
_WARNING = re.compile(r"^\S.*?:\d+: ((?:[\w.]+\.)?\w*Warning: .*)$")
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
# An exception as Python prints it (`RuntimeError: ...`, `torch.OutOfMemoryError: ...`), or
# the kernel's or a shell's word for a kill.
_ERROR = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception)(?::|$)|(?:^|\d\s+)Killed(?:\s|$)"
)


def meaningful_line(tail: str) -> str | None:
    """The line of a log's tail that best says what happened, stripped; None if none does.

    The last error line if there is one; else the last ordinary line; else the last
    warning's own text. Never a warning's echoed source line, a traceback frame or a
    blank line: those say nothing about why a process ended.
    """
    errors: list[str] = []
    ordinary: list[str] = []
    warnings: list[str] = []
    after_warning = in_traceback = False
    for raw in tail.splitlines():
        text = raw.strip()
        indented = raw[:1].isspace()
        if not text:
            continue
        if indented and (in_traceback or after_warning):
            # A frame, its code line or carets; or the source line a warning echoes.
            after_warning = False
            continue
        after_warning = in_traceback = False
        if text == _TRACEBACK:
            in_traceback = True
        elif text in _CHAINED:
            continue
        elif warning := _WARNING.match(text):
            after_warning = True
            # From `Category: message` on: the file and line are the library's, not the job's.
            warnings.append(warning.group(1))
        elif _ERROR.search(text):
            errors.append(text)
        else:
            ordinary.append(text)
    for found in (errors, ordinary, warnings):
        if found:
            return found[-1]
    return None


def log_tail(path: Path) -> str | None:
    """The last LOG_TAIL_BYTES of a log; None if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def quoted_log_line(path: Path, secret: str | None = None) -> str | None:
    """The line of a worker's log worth quoting, scrubbed of `secret` and cut short."""
    tail = log_tail(path)
    line = meaningful_line(tail) if tail is not None else None
    # Scrubbed before it is cut short, so no part of a key is left.
    return scrub(line, secret)[:REASON_CHARS] if line else None


def exit_reason(returncode: int, last_line: str | None) -> tuple[str, str]:
    """(code, message) for a worker that ended without saying why.

    `last_line`: the line of its log to quote (see `quoted_log_line`).
    """
    if returncode == 0:
        return "worker_crashed", "The training process exited without reporting a result."
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if -returncode == signal.SIGKILL:
            code = "worker_killed"
            what = (
                f"The training process was killed ({name}); "
                "the usual cause is running out of memory"
            )
        else:
            code = "worker_crashed"
            what = f"The training process was stopped by {name}"
    else:
        code = "worker_crashed"
        what = f"The training process exited with code {returncode} without finishing"
    return code, f"{what}. Last log line: {last_line}" if last_line else f"{what}."
