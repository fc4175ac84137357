"""Where console output goes, without mangling the line the person is typing.

Interactive input is read by `input()` in a worker thread (readline gives history and
editing), while the bot's background work prints from the event loop. Each print clears
the input line, writes the text, then draws the prompt and what was typed so far again
(readline's `get_line_buffer`), so a watcher's reply never lands in the middle of a
half-typed command. prompt_toolkit would do the same, but the standard library suffices.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

try:  # readline is missing on some platforms (Windows); plain input() still works there.
    import readline
except ImportError:  # pragma: no cover - depends on the platform
    readline = None  # type: ignore[assignment]

CLEAR_LINE = "\r\x1b[2K"


class Screen:
    """Plain output: scripts, pipes and tests read exactly these lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def show(self, lines: list[str]) -> None:
        with self._lock:
            for line in lines:
                self.stream.write(line + "\n")
            self.stream.flush()

    def input_started(self, prompt: str) -> None:
        """The person is about to type at `prompt` (interactive screens redraw it)."""

    def input_finished(self) -> None:
        pass


class TerminalScreen(Screen):
    """A terminal with a person typing: output redraws the prompt and the typed text."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._prompt: str | None = None

    def input_started(self, prompt: str) -> None:
        with self._lock:
            self._prompt = prompt

    def input_finished(self) -> None:
        with self._lock:
            self._prompt = None

    def show(self, lines: list[str]) -> None:
        with self._lock:
            if self._prompt is None:
                for line in lines:
                    self.stream.write(line + "\n")
                self.stream.flush()
                return
            typed = readline.get_line_buffer() if readline is not None else ""
            self.stream.write(CLEAR_LINE)
            for line in lines:
                self.stream.write(line + "\n")
            self.stream.write(self._prompt + typed)
            self.stream.flush()
