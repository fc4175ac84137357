"""Which hyperparameter ranges the bot checks: the local engine's when it runs the embedded
engine, Nebius's when it talks to Nebius."""

from __future__ import annotations

from pathlib import Path

from bot.backends import start_backends
from bot.config import BotSettings
from client.hyperparameters import LOCAL_ENGINE, NEBIUS
from tests.bot.console.test_backends import FakeEngine


def settings(data_dir: Path, **values: object) -> BotSettings:
    return BotSettings(data_dir=data_dir, database_path=data_dir / "bot.sqlite3", **values)


async def test_the_embedded_engine_gets_the_local_engines_ranges(
    isolated_environment: Path,
) -> None:
    backends = start_backends(
        settings(isolated_environment),
        engine_factory=lambda d, k, w: FakeEngine(d, k, w),
    )
    try:
        assert backends.range_profile is LOCAL_ENGINE
        client = backends.client()
        assert client.range_profile is LOCAL_ENGINE
        await client.aclose()
    finally:
        backends.close()


async def test_nebius_gets_nebius_ranges(isolated_environment: Path) -> None:
    backends = start_backends(
        settings(
            isolated_environment,
            nebius_api_key="k-123456",
            nebius_base_url="https://api.tokenfactory.nebius.com/v1/",
        )
    )
    assert backends.range_profile is NEBIUS
    client = backends.client()
    assert client.range_profile is NEBIUS
    await client.aclose()
