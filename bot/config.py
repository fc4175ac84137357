"""The bot's settings, read from the environment once at start-up.

Secrets are pydantic `SecretStr`: printing or logging the settings never shows them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from client import ConfigError
from client.config import normalize_base_url
from client.constants import DEFAULT_BASE_URL

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
# Slack serves `url_private_download` from these hosts only; nothing else gets the bot token.
SLACK_FILE_HOSTS = ("files.slack.com", "files-edge.slack.com", "files-origin.slack.com")
DEFAULT_MAX_UPLOAD_MB = 512
# How long a process's watches and job starts stay its own after its last renewal: one
# killed without a word loses them this long after, and the others take them over.
DEFAULT_LEASE_S = 30.0
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")

SlackMode = Literal["socket", "http", "none"]


def _csv(value: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(",") if part.strip())


def _secret(value: str | None) -> SecretStr | None:
    value = (value or "").strip()
    return SecretStr(value) if value else None


class BotSettings(BaseModel):
    """Everything the bot reads from the environment (see `from_env` for the names)."""

    model_config = ConfigDict(frozen=True)

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    http_host: str = "0.0.0.0"
    http_port: int = 3000
    nebius_api_key: SecretStr | None = None
    nebius_base_url: str = DEFAULT_BASE_URL  # the client's, as the CLI tools use it
    wandb_api_key: SecretStr | None = None
    # Empty allowlist = everyone may; otherwise only the listed Slack ids.
    allowed_users: frozenset[str] = frozenset()
    allowed_channels: frozenset[str] = frozenset()
    data_dir: Path = Path("data")
    database_path: Path = Path("data/bot.sqlite3")
    # PostgreSQL, shared by several bot processes; None: the SQLite file above. A secret: the
    # URL may carry a password.
    database_url: SecretStr | None = None
    lease_s: float = Field(default=DEFAULT_LEASE_S, gt=0)
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_MB * 1024 * 1024, gt=0)
    context_length: int = Field(default=8192, gt=0)

    @field_validator("nebius_base_url")
    @classmethod
    def _nebius_url(cls, value: str) -> str:
        try:
            return normalize_base_url(value)  # the client's rule, so both read a URL alike
        except ConfigError as error:
            raise ValueError(error.message) from None

    @field_validator("slack_api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https:// (got {value!r})")
        return value if value.endswith("/") else value + "/"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(DATABASE_URL_SCHEMES):
            raise ValueError("must be a postgresql:// URL (leave it unset for the SQLite file)")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BotSettings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("XGENLENS_DATA_DIR") or "data")
        values: dict[str, object] = {
            "slack_bot_token": _secret(env.get("SLACK_BOT_TOKEN")),
            "slack_app_token": _secret(env.get("SLACK_APP_TOKEN")),
            "slack_signing_secret": _secret(env.get("SLACK_SIGNING_SECRET")),
            "nebius_api_key": _secret(env.get("NEBIUS_API_KEY")),
            "wandb_api_key": _secret(env.get("WANDB_API_KEY")),
            "allowed_users": _csv(env.get("XGENLENS_ALLOWED_USERS")),
            "allowed_channels": _csv(env.get("XGENLENS_ALLOWED_CHANNELS")),
            "data_dir": data_dir,
            "database_path": Path(env.get("XGENLENS_BOT_DB") or data_dir / "bot.sqlite3"),
            "database_url": _secret(env.get("XGENLENS_DATABASE_URL")),
        }
        optional = {
            "slack_api_url": "SLACK_API_URL",
            "nebius_base_url": "NEBIUS_BASE_URL",
            "http_host": "XGENLENS_HTTP_HOST",
            "http_port": "PORT",
            "max_upload_bytes": "XGENLENS_MAX_UPLOAD_BYTES",
            "context_length": "XGENLENS_CONTEXT_LENGTH",
            "lease_s": "XGENLENS_LEASE_S",
        }
        for field, var in optional.items():
            if env.get(var, "").strip():
                values[field] = env[var].strip()
        return cls.model_validate(values)

    @property
    def slack_mode(self) -> SlackMode:
        """Socket Mode when an app token is set (the default), HTTP with a signing secret."""
        if self.slack_bot_token is None:
            return "none"
        if self.slack_app_token is not None:
            return "socket"
        if self.slack_signing_secret is not None:
            return "http"
        return "none"

    def missing_slack_settings(self) -> list[str]:
        """What to set for Slack to start; empty when it can."""
        missing = []
        if self.slack_bot_token is None:
            missing.append("SLACK_BOT_TOKEN")
        if self.slack_app_token is None and self.slack_signing_secret is None:
            missing.append("SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")
        return missing

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for scrubbing text before it reaches Slack or a log."""
        fields = (
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
            self.nebius_api_key,
            self.wandb_api_key,
            self.database_url,
        )
        return tuple(f.get_secret_value() for f in fields if f is not None)

    def may_manage_jobs(self, user: str, channel: str) -> str | None:
        """None when the user may create/cancel jobs here; otherwise why not."""
        if self.allowed_users and user not in self.allowed_users:
            return "you are not on this bot's list of users who may create or cancel jobs"
        if self.allowed_channels and channel not in self.allowed_channels:
            return "jobs cannot be created or cancelled from this channel"
        return None
