"""`bot.backends`: which Slack and which Nebius the bot uses. The console without Slack tokens,
the local engine without a Nebius key, each with its hyperparameter ranges; the first lines
say what was chosen and which database the bot uses, never a key or a password."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.backends import BackendError, Backends, start_backends
from bot.config import BotSettings
from client.hyperparameters import LOCAL_ENGINE, NEBIUS


class FakeEngine:
    def __init__(self, data_dir: Path, api_key: str, warm_worker: bool, fail: bool = False):
        self.data_dir, self.api_key, self.warm_worker, self.fail = (
            data_dir,
            api_key,
            warm_worker,
            fail,
        )
        self.started = self.stopped = False

    @property
    def base_url(self) -> str:
        return "http://127.0.0.1:4321/v1"

    def start(self) -> FakeEngine:
        if self.fail:
            raise RuntimeError("the engine did not start: address in use")
        self.started = True
        return self

    def stop(self) -> None:
        self.stopped = True


def settings(data_dir: Path, **values: object) -> BotSettings:
    return BotSettings(data_dir=data_dir, database_path=data_dir / "bot.sqlite3", **values)


# -- choosing the backends ----------------------------------------------------------------


def test_no_key_starts_the_local_engine_under_the_data_folder_and_says_so(
    isolated_environment: Path,
) -> None:
    made: list[FakeEngine] = []

    def factory(data_dir: Path, key: str, warm: bool) -> FakeEngine:
        made.append(FakeEngine(data_dir, key, warm))
        return made[-1]

    backends = start_backends(settings(isolated_environment), engine_factory=factory)
    engine = made[0]
    assert engine.started and engine.data_dir == isolated_environment / "engine"
    assert backends.console
    assert backends.nebius_base_url == "http://127.0.0.1:4321/v1/"
    assert backends.nebius_api_key.get_secret_value() == engine.api_key
    lines = backends.lines()
    assert lines[0] == "Slack: none, console mode in this terminal (no Slack tokens are set)"
    assert lines[1] == (
        "Nebius: the local engine at http://127.0.0.1:4321/v1/ "
        f"(NEBIUS_API_KEY is not set; engine data in {isolated_environment / 'engine'})"
    )
    assert engine.api_key not in "\n".join(lines)
    backends.close()
    assert engine.stopped and backends.engine is None


def test_a_nebius_key_uses_nebius_and_starts_no_engine(isolated_environment: Path) -> None:
    def factory(*args) -> FakeEngine:
        raise AssertionError("no engine should start")

    backends = start_backends(
        settings(isolated_environment, nebius_api_key="key-sk-123", slack_bot_token="xoxb-1"),
        engine_factory=factory,
    )
    lines = backends.lines()
    assert lines[0] == (
        "Slack: none, console mode in this terminal (SLACK_APP_TOKEN (Socket Mode) or "
        "SLACK_SIGNING_SECRET (HTTP mode) is not set)"
    )
    assert lines[1] == "Nebius: https://api.tokenfactory.nebius.com/v1/ (key from NEBIUS_API_KEY)"
    assert "key-sk-123" not in "\n".join(lines) and "xoxb-1" not in "\n".join(lines)
    backends.close()


def test_slack_tokens_with_the_local_engine_is_a_valid_mix(isolated_environment: Path) -> None:
    backends = start_backends(
        settings(isolated_environment, slack_bot_token="xoxb-1", slack_app_token="xapp-1"),
        engine_factory=lambda d, k, w: FakeEngine(d, k, w),
    )
    assert not backends.console
    assert backends.lines()[0].startswith("Slack: Socket Mode")
    assert backends.lines()[1].startswith("Nebius: the local engine at http://127.0.0.1:4321/")
    backends.close()


def test_an_engine_that_cannot_start_is_a_readable_error(isolated_environment: Path) -> None:
    with pytest.raises(BackendError, match=r"did not start: .*address in use"):
        start_backends(
            settings(isolated_environment),
            engine_factory=lambda d, k, w: FakeEngine(d, k, w, fail=True),
        )


# -- the hyperparameter ranges the bot checks: the local engine's or Nebius's ---------------


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


# -- the database line: which one, never its password --------------------------------------


def first_lines(tmp_path: Path, database_url: str | None) -> list[str]:
    chosen = settings(tmp_path, nebius_api_key="nebius-key", database_url=database_url)
    return Backends(chosen, chosen.nebius_base_url, SecretStr("nebius-key")).lines()


def test_the_sqlite_file_is_named_when_no_database_url_is_set(tmp_path: Path) -> None:
    assert first_lines(tmp_path, None)[2] == f"Database: {tmp_path / 'bot.sqlite3'}"


def test_a_postgresql_database_is_named_by_host_port_and_name_only(tmp_path: Path) -> None:
    url = "postgresql://xgenlens:s3cret-pass@db.internal:6432/bot_state?sslmode=require"
    lines = first_lines(tmp_path, url)
    assert lines[2] == "Database: PostgreSQL at db.internal:6432/bot_state (XGENLENS_DATABASE_URL)"
    assert not any("s3cret-pass" in line or "bot.sqlite3" in line for line in lines)


def test_a_database_url_without_a_port_shows_the_default_one(tmp_path: Path) -> None:
    line = first_lines(tmp_path, "postgresql://me:pw@127.0.0.1/xgenlens")[2]
    assert line == "Database: PostgreSQL at 127.0.0.1:5432/xgenlens (XGENLENS_DATABASE_URL)"


def test_an_unreadable_database_url_is_named_without_any_of_it(tmp_path: Path) -> None:
    line = first_lines(tmp_path, "postgresql://me:pw@host/db?bad=param")[2]
    assert line == "Database: PostgreSQL (XGENLENS_DATABASE_URL, whose address cannot be read)"
