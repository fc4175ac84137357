"""Helpers of the console tests: a screen that keeps what it printed, and the console run
through a script against Nebius mocked by respx."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx
from pydantic import SecretStr

from bot.backends import Backends
from bot.config import BotSettings
from bot.console import run_console
from bot.console.screen import Screen
from bot.console.terminal_chat import ConsoleChat
from tests.bot.conftest import NEBIUS_KEY, NEBIUS_URL
from tests.bot.fake_clock import FakeClock


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


@pytest.fixture
def nebius() -> Iterator[respx.Router]:
    """Nebius, mocked for every client the console makes: tests add the routes they need."""
    with respx.mock(base_url=NEBIUS_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
def backends(isolated_environment: Path) -> Backends:
    """The console's backends: no Slack tokens, Nebius by key (the mocked one)."""
    settings = BotSettings(
        nebius_api_key=NEBIUS_KEY,
        nebius_base_url=NEBIUS_URL,
        data_dir=isolated_environment,
        database_path=isolated_environment / "bot.sqlite3",
    )
    return Backends(settings, NEBIUS_URL, SecretStr(NEBIUS_KEY))


def job(status: str = "running", **changes: object) -> dict:
    """ftjob-1 as Nebius shows it: tiny-model, step 2 of 8 unless changed."""
    return {
        "id": "ftjob-1",
        "object": "fine_tuning.job",
        "model": "tiny-model",
        "status": status,
        "training_file": "file-1",
        "trained_steps": 2,
        "total_steps": 8,
    } | changes


async def run(backends: Backends, script: str, clock: FakeClock | None = None) -> tuple[int, str]:
    """Runs the console on the lines of `script`, as `--script` does: its exit code and all
    it printed, which never shows the Nebius key."""
    screen = RecordingScreen()
    downloads = backends.settings.data_dir / "downloads"
    code = await run_console(
        backends,
        downloads,
        script.splitlines(),
        screen=screen,
        clock=clock or FakeClock(),
        user_name="ada",
    )
    assert NEBIUS_KEY not in screen.text
    return code, screen.text
