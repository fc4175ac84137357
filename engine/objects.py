"""Builders for the API's objects (files, events, model names) in the contract's shapes."""

from typing import Any

from engine.ids import new_id, now


def file_object(
    file_id: str, filename: str, size: int, purpose: str, status: str
) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": now(),
        "filename": filename,
        "purpose": purpose,
        "status": status,
        "status_details": None,
    }


def event_object(
    message: str, *, level: str = "info", type: str = "message", data: Any = None
) -> dict[str, Any]:
    return {
        "id": new_id("ftevent"),
        "object": "fine_tuning.job.event",
        "created_at": now(),
        "level": level,
        "message": message,
        "type": type,
        "data": data,
    }


def fine_tuned_name(model: str, suffix: str | None, job_id: str) -> str:
    return f"ft:{model}:{suffix or 'engine'}:{job_id}"


def _without_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_keys(v) for k, v in value.items() if k != "api_key"}
    if isinstance(value, list):
        return [_without_keys(v) for v in value]
    return value


def public_integrations(integrations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Integrations as the job object shows them: any API key left out, at any depth."""
    return [_without_keys(item) for item in integrations]
