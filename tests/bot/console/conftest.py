"""Helpers of the console tests: a screen that keeps what it printed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.console.screen import Screen
from bot.console.terminal_chat import ConsoleChat


class RecordingScreen(Screen):
    def __init__(self) -> None:
        super().__init__(io.StringIO())

    @property
    def text(self) -> str:
        return self.stream.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def screen() -> RecordingScreen:
    return RecordingScreen()


@pytest.fixture
def chat(screen: RecordingScreen, tmp_path: Path) -> ConsoleChat:
    return ConsoleChat(screen, tmp_path / "downloads", user_name="ada")
