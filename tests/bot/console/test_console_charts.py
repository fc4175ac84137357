"""The loss chart in console mode: the PNG is saved under the data folder, its path is
printed, and the thread shows a one-line sparkline of the loss."""

from __future__ import annotations

from pathlib import Path

import respx

from bot.config import BotSettings
from bot.console.terminal_chat import ConsoleChat
from bot.core.bot import Bot
from bot.core.requests import CommandRequest
from bot.store import SQLiteStore
from tests.bot.conftest import NEBIUS_URL, mocked_nebius
from tests.bot.console.conftest import RecordingScreen
from tests.bot.fake_clock import FakeClock
from tests.bot.flows.test_charts import PNG_MAGIC, serve_job


async def test_the_console_saves_the_chart_and_shows_its_sparkline(
    screen: RecordingScreen, tmp_path: Path
) -> None:
    router = respx.Router(base_url=NEBIUS_URL, assert_all_called=False)
    serve_job(router)
    settings = BotSettings(data_dir=tmp_path, database_path=tmp_path / "bot.sqlite3")
    downloads = tmp_path / "downloads"
    chat = ConsoleChat(screen, downloads, user_name="ada")
    clock = FakeClock()
    nebius = mocked_nebius(router, clock)
    bot = Bot(settings, SQLiteStore(settings.database_path), chat, nebius, clock=clock)
    try:
        await bot.commands.run(CommandRequest("chart ftjob-1", user="U1", channel="C1"))
    finally:
        await bot.aclose()

    (saved,) = chat.saved_files
    assert saved.name == "loss-ftjob-1.png" and saved.is_relative_to(tmp_path)
    assert saved.read_bytes().startswith(PNG_MAGIC)
    assert str(saved) in screen.text
    (line,) = [ln for ln in screen.text.splitlines() if "loss 2.9 " in ln]
    assert " 1 (20 steps)" in line and "▁" in line
