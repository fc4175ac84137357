"""Settings come from the environment; secrets never show."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import BotSettings


def test_the_database_lives_under_the_data_folder(isolated_environment: Path) -> None:
    settings = BotSettings.from_env()
    assert settings.database_path == isolated_environment / "bot.sqlite3"
    assert settings.slack_mode == "none"


def test_without_a_data_folder_it_defaults_to_data() -> None:
    settings = BotSettings.from_env({})
    assert settings.database_path == Path("data/bot.sqlite3")


def test_an_app_token_means_socket_mode_and_a_signing_secret_http_mode() -> None:
    socket = BotSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    http = BotSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"})
    assert socket.slack_mode == "socket"
    assert http.slack_mode == "http"


def test_what_is_missing_for_slack_is_named() -> None:
    missing = BotSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1"}).missing_slack_settings()
    assert missing == ["SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)"]


def test_secrets_never_appear_when_the_settings_are_printed() -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-secret-bot",
        "SLACK_APP_TOKEN": "xapp-secret-app",
        "NEBIUS_API_KEY": "neb-secret-key",
    }
    settings = BotSettings.from_env(env)
    shown = repr(settings) + str(settings)
    for secret in env.values():
        assert secret not in shown
    assert set(settings.secrets()) == set(env.values())


def test_allowlists_limit_who_manages_jobs_and_where() -> None:
    settings = BotSettings.from_env(
        {"XGENLENS_ALLOWED_USERS": "U1, U2", "XGENLENS_ALLOWED_CHANNELS": "C1"}
    )
    assert settings.may_manage_jobs("U1", "C1") is None
    assert "not on this bot's list" in (settings.may_manage_jobs("U3", "C1") or "")
    assert "this channel" in (settings.may_manage_jobs("U2", "C9") or "")
    assert BotSettings.from_env({}).may_manage_jobs("anyone", "anywhere") is None


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(ValidationError, match="nebius_base_url"):
        BotSettings.from_env({"NEBIUS_BASE_URL": "ftp://nebius"})


def test_the_nebius_url_is_read_as_the_client_reads_it() -> None:
    from client.config import resolve_settings

    assert BotSettings.from_env({}).nebius_base_url == resolve_settings("k").base_url
    typed = "  https://nebius.example/v1 "  # pasted with spaces, no trailing slash
    assert BotSettings.from_env({"NEBIUS_BASE_URL": typed}).nebius_base_url == (
        resolve_settings("k", typed).base_url
    )
    with pytest.raises(ValidationError, match="NEBIUS_BASE_URL must start with http"):
        BotSettings.from_env({"NEBIUS_BASE_URL": "ftp://nebius"})
