"""The exception tree: every failure the client raises is a NebiusError.

An API error keeps the status code, Nebius's message (whatever the body's shape), the raw
body, and what was sent (method, URL, parameters, JSON body) with every secret redacted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from client._retry import parse_retry_after

if TYPE_CHECKING:  # only annotated here; the engine imports this module without httpx
    import httpx

REDACTED = "***"
# Keys whose values are secrets wherever they appear in a request body or parameters.
_SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password|authorization|credential)", re.I)
# Bearer tokens and key-like strings that may be echoed back inside an error body.
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)

HINTS: dict[int, str] = {
    400: (
        "Bad request: check the model name (`finetune models`), that the training file is "
        "processed (`wait_for_file`), and that the JSONL format is valid (`validate-jsonl`)."
    ),
    401: "Unauthorized: check NEBIUS_API_KEY (is it set, complete, and not revoked?).",
    403: "Forbidden: this API key may not use this resource or model.",
    404: "Not found: check the id (job, file or checkpoint) and NEBIUS_BASE_URL.",
    413: "File too large: Nebius accepts files up to 5 GB; split the dataset.",
    422: (
        "Unprocessable: check the model name (`finetune models`), that the training file is "
        "processed, the JSONL format (`validate-jsonl`), and the hyperparameter ranges."
    ),
    429: "Rate limited: wait a moment and try again.",
}
SERVER_HINT = "Nebius had a server error; it is usually temporary: try again shortly."
CONNECTION_HINT = "Could not reach the API: check NEBIUS_BASE_URL and your network."


def redact_value(value: Any, secrets: tuple[str, ...] = ()) -> Any:
    """A copy of value with secret-named keys and known secret strings replaced."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if _SECRET_KEY.search(str(k)) and v else redact_value(v, secrets))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(v, secrets) for v in value]
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return _BEARER.sub(r"\1" + REDACTED, text)


@dataclass(frozen=True)
class RequestInfo:
    """What was sent, already redacted: safe to print and log."""

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None

    @classmethod
    def build(
        cls,
        method: str,
        url: str,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        secrets: tuple[str, ...] = (),
    ) -> RequestInfo:
        return cls(
            method=method.upper(),
            url=redact_text(url, secrets),
            params=redact_value(dict(params or {}), secrets),
            json=redact_value(json_body, secrets),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "params": self.params, "json": self.json}


class NebiusError(Exception):
    """Base of every client error."""

    default_hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: str | None = None,
        request: RequestInfo | None = None,
        hint: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.request = request
        self.code = code
        self.param = param
        # Seconds the server asked us to wait (429 Retry-After), when it said.
        self.retry_after: float | None = None
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        where = f" ({self.request.method} {self.request.url})" if self.request else ""
        status = f"{self.status_code} " if self.status_code is not None else ""
        return f"{status}{self.message}{where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": type(self).__name__,
            "status_code": self.status_code,
            "message": self.message,
            "code": self.code,
            "param": self.param,
            "hint": self.hint,
            "body": self.body,
            "request": self.request.to_dict() if self.request else None,
        }


class ConfigError(NebiusError):
    """Missing or malformed configuration, raised before any request."""


class APIConnectionError(NebiusError):
    default_hint = CONNECTION_HINT


class APITimeoutError(APIConnectionError):
    default_hint = "The request timed out: the server is slow or unreachable; try again."


class APIStatusError(NebiusError):
    """The API answered with an error status."""


class BadRequestError(APIStatusError):
    default_hint = HINTS[400]


class AuthenticationError(APIStatusError):
    default_hint = HINTS[401]


class PermissionDeniedError(APIStatusError):
    default_hint = HINTS[403]


class NotFoundError(APIStatusError):
    default_hint = HINTS[404]


class PayloadTooLargeError(APIStatusError):
    default_hint = HINTS[413]


class UnprocessableEntityError(APIStatusError):
    default_hint = HINTS[422]


class RateLimitError(APIStatusError):
    default_hint = HINTS[429]


class ServerError(APIStatusError):
    default_hint = SERVER_HINT


class FileNotReadyError(NebiusError):
    """The file is not processed yet (job creation refused it, or waiting ran out of time)."""

    default_hint = "Nebius is still processing the file; wait and retry, or raise the timeout."


class FileProcessingError(NebiusError):
    """Nebius could not process an uploaded file."""

    default_hint = "Validate the file locally with `validate-jsonl` and upload it again."


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

_NOT_READY = re.compile(
    r"not (yet |been |fully )*(ready|processed)|still (being )?process|being processed"
    r"|is processing",
    re.I,
)


def extract_error(body_text: str) -> tuple[str | None, str | None, str | None]:
    """(message, code, param) from any of the body shapes Nebius uses."""
    text = body_text.strip()
    if not text:
        return None, None, None
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500], None, None
    return _from_json(data)


def _from_json(data: Any) -> tuple[str | None, str | None, str | None]:
    if isinstance(data, str):
        return data, None, None
    if isinstance(data, list):
        return _from_validation_errors(data)
    if not isinstance(data, dict):
        return str(data), None, None
    if data.get("error"):
        err = data["error"]
        if isinstance(err, dict):
            detail = _from_json(err["detail"])[0] if err.get("detail") else None
            message = err.get("message") or detail or json.dumps(err)
            code = err.get("code") or err.get("type")
            param = err.get("param")
            return str(message), _opt_str(code), _opt_str(param)
        return str(err), None, None
    if "detail" in data:
        # FastAPI: {"detail": "text"} or, for a 422, {"detail": [{"loc", "msg", "type"}]};
        # an empty detail says nothing (the status's reason phrase is shown instead).
        return _from_json(data["detail"]) if data["detail"] else (None, None, None)
    for key in ("message", "msg", "title"):
        if data.get(key):
            return str(data[key]), _opt_str(data.get("code")), None
    return json.dumps(data)[:500], None, None


def _from_validation_errors(items: list[Any]) -> tuple[str | None, str | None, str | None]:
    """FastAPI's validation errors in words: `hyperparameters.n_epochs: Input should be less
    than or equal to 20 (got 100)`; the first field named is the error's param."""
    parts: list[str] = []
    params: list[str] = []
    for item in items:
        if not (isinstance(item, dict) and "msg" in item):
            parts.append(item if isinstance(item, str) else json.dumps(item, default=str))
            continue
        raw_loc = item.get("loc")
        loc_parts = raw_loc if isinstance(raw_loc, list) else [raw_loc] if raw_loc else []
        # "body" (or "query", "path") says where in the request, not which field.
        if loc_parts and loc_parts[0] in ("body", "query", "path"):
            loc_parts = loc_parts[1:]
        loc = ".".join(str(p) for p in loc_parts)
        text = str(item["msg"])
        value = item.get("input")
        # Only plain numbers: an input may be the whole request body, secrets included.
        if isinstance(value, int | float) and not isinstance(value, bool):
            text += f" (got {value})"
        parts.append(f"{loc}: {text}" if loc else text)
        if loc:
            params.append(loc)
    return "; ".join(parts) or None, None, params[0] if params else None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def is_not_ready_message(message: str | None) -> bool:
    return bool(message and "file" in message.lower() and _NOT_READY.search(message))


def _creates_job_or_file(request: RequestInfo) -> bool:
    path = request.url.split("?", 1)[0].rstrip("/")
    return request.method == "POST" and path.endswith(("/fine_tuning/jobs", "/files"))


def error_from_response(
    response: httpx.Response, request: RequestInfo, secrets: tuple[str, ...] = ()
) -> APIStatusError:
    """The right NebiusError subclass for an error response (body must be read)."""
    body = redact_text(response.text, secrets)
    message, code, param = extract_error(body)
    message = message or response.reason_phrase or f"HTTP {response.status_code}"
    status = response.status_code
    cls = _STATUS_CLASSES.get(status, ServerError if status >= 500 else APIStatusError)
    error = cls(message, status_code=status, body=body, request=request, code=code, param=param)
    if cls is APIStatusError:
        error.hint = HINTS.get(status)
    if status in (400, 422) and not _creates_job_or_file(request):
        # The model/file/JSONL checklist only helps for creating jobs and uploading files.
        error.hint = "The API refused this request: the message above says why."
    error.retry_after = parse_retry_after(response.headers.get("retry-after"))
    return error
