"""Nebius fine-tuning API client and dataset tools; knows nothing of Slack.

The public names below are loaded on first use: importing one pure module (the engine takes
`client.hyperparameters` and `client.validation`) then does not load the HTTP client and httpx,
which would add about a tenth of a second to every engine process and training worker.
"""
# ruff: noqa: F401

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# For type checkers and readers only (nothing is imported here at run time); a test holds it
# equal to _HOMES.
if TYPE_CHECKING:  # ruff's F401 is off for this file: these names are re-exported lazily
    from client.api import NebiusClient, job_matches
    from client.config import Settings, resolve_settings
    from client.errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConfigError,
        FileNotReadyError,
        FileProcessingError,
        NebiusError,
        NotFoundError,
        PayloadTooLargeError,
        PermissionDeniedError,
        RateLimitError,
        RequestInfo,
        ServerError,
        UnprocessableEntityError,
    )
    from client.hyperparameters import (
        HyperparameterError,
        Hyperparameters,
        JobRequest,
        WandbIntegration,
        WandbSettings,
    )
    from client.models import (
        TERMINAL_STATUSES,
        Checkpoint,
        Event,
        FileObject,
        Job,
        JobError,
        Model,
        Page,
        clean_filename,
    )

# Each public name and the module it lives in.
_HOMES: dict[str, str] = {
    **dict.fromkeys(("NebiusClient", "job_matches"), "client.api"),
    **dict.fromkeys(("Settings", "resolve_settings"), "client.config"),
    **dict.fromkeys(
        (
            "APIConnectionError",
            "APIStatusError",
            "APITimeoutError",
            "AuthenticationError",
            "BadRequestError",
            "ConfigError",
            "FileNotReadyError",
            "FileProcessingError",
            "NebiusError",
            "NotFoundError",
            "PayloadTooLargeError",
            "PermissionDeniedError",
            "RateLimitError",
            "RequestInfo",
            "ServerError",
            "UnprocessableEntityError",
        ),
        "client.errors",
    ),
    **dict.fromkeys(
        (
            "HyperparameterError",
            "Hyperparameters",
            "JobRequest",
            "WandbIntegration",
            "WandbSettings",
        ),
        "client.hyperparameters",
    ),
    **dict.fromkeys(
        (
            "Checkpoint",
            "Event",
            "FileObject",
            "Job",
            "JobError",
            "Model",
            "Page",
            "TERMINAL_STATUSES",
            "clean_filename",
        ),
        "client.models",
    ),
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'client' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once loaded, found without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
