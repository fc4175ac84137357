"""`bot.backends`: the first lines say which database the bot uses, and never its password."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from bot.backends import Backends
from bot.config import BotSettings


def first_lines(tmp_path: Path, database_url: str | None) -> list[str]:
    settings = BotSettings(
        nebius_api_key="nebius-key",
        data_dir=tmp_path,
        database_path=tmp_path / "bot.sqlite3",
        database_url=database_url,
    )
    return Backends(settings, settings.nebius_base_url, SecretStr("nebius-key")).lines()


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
