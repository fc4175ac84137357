"""Terminal output shared by the command lines: tables, sizes, times, progress bars, errors."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from client.errors import NebiusError
from client.sizes import human_bytes

EXIT_OK = 0
EXIT_API = 1  # the API or the network failed
EXIT_USAGE = 2  # bad arguments, configuration or input (argparse uses 2 as well)
EXIT_INVALID_DATA = 3  # the dataset failed local validation
EXIT_JOB_FAILED = 4  # a followed job ended failed or cancelled
EXIT_INTERRUPTED = 130


def human_time(epoch: int | float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def print_json(data: Any, stream: TextIO | None = None) -> None:
    print(json.dumps(data, indent=2, default=str), file=stream or sys.stdout)


def report_error(error: BaseException, *, as_json: bool = False) -> None:
    """One clear message (and hint) on stderr; never a traceback."""
    if isinstance(error, NebiusError):
        if as_json:
            print_json({"error": error.to_dict()})
            return
        status = f"{error.status_code} " if error.status_code is not None else ""
        print(f"error: {status}{error.message}", file=sys.stderr)
        if error.request is not None:
            print(f"  request: {error.request.method} {error.request.url}", file=sys.stderr)
        if error.hint:
            print(f"  hint: {error.hint}", file=sys.stderr)
        return
    message = f"unexpected failure: {type(error).__name__}: {error}"
    if as_json:
        print_json({"error": {"type": type(error).__name__, "message": message}})
    else:
        print(f"error: {message}", file=sys.stderr)


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most 10 times a second.

    Off when stderr is not a terminal (logs and pipes get one summary line instead)."""

    WIDTH = 28

    def __init__(
        self, label: str, *, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self.done = 0
        self.total: int | None = None

    def update(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at >= 0.1 or (total and done >= total)):
            self._drawn_at = now
            self.stream.write("\r" + self.render(now) + "\033[K")
            self.stream.flush()

    def render(self, now: float | None = None) -> str:
        elapsed = max(1e-6, (now or time.monotonic()) - self.started)
        rate = f"{human_bytes(self.done / elapsed)}/s"
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            return (
                f"{self.label} [{bar}] {frac * 100:3.0f}% "
                f"{human_bytes(self.done)}/{human_bytes(self.total)} {rate}"
            )
        return f"{self.label} {human_bytes(self.done)} {rate}"

    def finish(self, note: str = "") -> None:
        elapsed = time.monotonic() - self.started
        line = f"{self.label}: {human_bytes(self.done)} in {elapsed:.1f}s{note}"
        if self.enabled:
            self.stream.write("\r" + line + "\033[K\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


class Status:
    """A line of status on stderr that redraws in place on a terminal."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = ""

    def show(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r" + text + "\033[K")
            self.stream.flush()
        elif text != self._last:
            self.stream.write(text + "\n")
        self._last = text

    def done(self, text: str) -> None:
        self.stream.write(("\r" + text + "\033[K\n") if self.enabled else text + "\n")
        self.stream.flush()
