"""The bot's state: everything a restart must not forget, and what several processes sharing
one database must do once. `Store` is the interface; `SQLiteStore` (the default, one file)
and `PostgresStore` (XGENLENS_DATABASE_URL, shared by several processes) implement it."""

from __future__ import annotations

from bot.clock import Clock
from bot.config import DEFAULT_LEASE_S, BotSettings
from bot.store.base import Store, StoreError
from bot.store.records import (
    PRUNE_EVERY,
    RETENTION_S,
    START_PHASES,
    ContentRequest,
    JobPlan,
    LeaseLost,
    OutboxEntry,
    PendingStart,
    StoredDeployment,
    Upload,
    Watch,
)
from bot.store.sqlite import SQLiteStore

__all__ = [
    "DEFAULT_LEASE_S",
    "PRUNE_EVERY",
    "RETENTION_S",
    "START_PHASES",
    "ContentRequest",
    "JobPlan",
    "LeaseLost",
    "OutboxEntry",
    "PendingStart",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoredDeployment",
    "Upload",
    "Watch",
    "store_for",
]


def store_for(settings: BotSettings, *, clock: Clock | None = None) -> Store:
    """The store the settings name: PostgreSQL for a database URL, else the SQLite file.
    A PostgreSQL store connects on `await store.open()`. `clock`: the bot's (a real one by
    default), whose `time()` the store's times are."""
    if settings.database_url is not None:
        from bot.store.postgres import PostgresStore

        url = settings.database_url.get_secret_value()
        return PostgresStore(url, clock=clock, lease_s=settings.lease_s)
    return SQLiteStore(settings.database_path, clock=clock, lease_s=settings.lease_s)
