"""Which Slack and which Nebius the bot uses, chosen from the environment.

No Slack tokens: the console. No NEBIUS_API_KEY: the local engine, started in this process
on a loopback port with its data under the data folder, and stopped with the bot. Any mix
works. `lines()` are the first lines of output, saying what was chosen (never a secret).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import SecretStr

from bot.config import BotSettings
from client.config import normalize_base_url

if TYPE_CHECKING:
    from client import NebiusClient
    from client.hyperparameters import RangeProfile

ENGINE_FOLDER = "engine"


class EngineLike(Protocol):
    """What the bot needs of `engine.server.EmbeddedEngine`."""

    @property
    def base_url(self) -> str: ...

    def start(self) -> Any: ...

    def stop(self) -> None: ...


class BackendError(Exception):
    """A backend could not start; the message says why and what to do."""


@dataclass
class Backends:
    settings: BotSettings
    nebius_base_url: str
    nebius_api_key: SecretStr
    engine: EngineLike | None = None
    engine_dir: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def slack_mode(self) -> str:
        return self.settings.slack_mode

    @property
    def console(self) -> bool:
        return self.slack_mode == "none"

    def lines(self) -> list[str]:
        """The first lines of output: which Slack, which Nebius, where the state lives."""
        settings = self.settings
        if self.slack_mode == "socket":
            slack = f"Slack: Socket Mode ({settings.slack_api_url})"
        elif self.slack_mode == "http":
            slack = (
                f"Slack: HTTP mode, listening on http://{settings.http_host}:{settings.http_port}"
                "/slack/events"
            )
        else:
            missing = settings.missing_slack_settings()
            why = "no Slack tokens are set" if len(missing) == 2 else f"{missing[0]} is not set"
            slack = f"Slack: none, console mode in this terminal ({why})"
        if self.engine is not None:
            nebius = (
                f"Nebius: the local engine at {self.nebius_base_url} "
                f"(NEBIUS_API_KEY is not set; engine data in {self.engine_dir})"
            )
        else:
            nebius = f"Nebius: {self.nebius_base_url} (key from NEBIUS_API_KEY)"
        return [slack, nebius, f"Database: {self.database}", *self.notes]

    @property
    def database(self) -> str:
        """Where the state lives: the SQLite file, or the PostgreSQL server and database
        (never the URL itself: it may carry a password)."""
        url = self.settings.database_url
        if url is None:
            return str(self.settings.database_path)
        import psycopg

        from bot.store.postgres import database_address

        try:
            where = database_address(url.get_secret_value())
        except psycopg.Error:
            return "PostgreSQL (XGENLENS_DATABASE_URL, whose address cannot be read)"
        return f"PostgreSQL at {where} (XGENLENS_DATABASE_URL)"

    @property
    def range_profile(self) -> RangeProfile:
        """The hyperparameter ranges requests are checked against before any upload: the
        local engine's for the embedded engine (or one on a loopback address), else Nebius's."""
        from client.hyperparameters import LOCAL_ENGINE, profile_for_base_url

        if self.engine is not None:
            return LOCAL_ENGINE
        return profile_for_base_url(self.nebius_base_url)

    def client(self, **options: Any) -> NebiusClient:
        """A Nebius client for the chosen server; make it inside the event loop that uses it."""
        from client import NebiusClient

        options.setdefault("range_profile", self.range_profile)
        return NebiusClient(self.nebius_api_key.get_secret_value(), self.nebius_base_url, **options)

    def close(self) -> None:
        """Stops the local engine, if this process started one."""
        if self.engine is not None:
            self.engine.stop()
            self.engine = None


def _embedded_engine(data_dir: Path, api_key: str, warm_worker: bool) -> EngineLike:
    try:
        from engine.server import EmbeddedEngine
    except ImportError as error:
        raise BackendError(
            f"the local engine cannot start: {error.name or error} is not installed. "
            "Install the engine extra (pip install -e '.[engine]', or `make run`), "
            "or set NEBIUS_API_KEY to use Nebius."
        ) from None
    return EmbeddedEngine(data_dir, api_key=api_key, warm_worker=warm_worker)


def start_backends(
    settings: BotSettings,
    *,
    warm_worker: bool = True,
    engine_factory: Any = _embedded_engine,
) -> Backends:
    """Starts what the settings call for; raises BackendError with a readable reason."""
    if settings.nebius_api_key is not None:
        return Backends(settings, settings.nebius_base_url, settings.nebius_api_key)
    engine_dir = settings.data_dir / ENGINE_FOLDER
    # A fresh key per run: only this process talks to its engine, even on a shared machine.
    key = secrets.token_urlsafe(24)
    engine = engine_factory(engine_dir, key, warm_worker)
    try:
        engine.start()
    except (OSError, RuntimeError) as error:
        raise BackendError(f"the local engine did not start: {error}") from None
    return Backends(
        settings,
        normalize_base_url(engine.base_url),
        SecretStr(key),
        engine=engine,
        engine_dir=engine_dir,
    )
