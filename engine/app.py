"""The HTTP API: the Nebius fine-tuning contract (OpenAI-compatible), served by Starlette."""

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from engine import deployments
from engine.chat_api import chat_completions
from engine.config import EngineConfig
from engine.errors import ApiError, api_error_handler, not_found
from engine.files import UPLOAD_PURPOSES, receive_upload, remove_quietly, validate_dataset
from engine.ids import new_id
from engine.inference import Inference
from engine.jobs import KeyVault, create_job
from engine.objects import file_object
from engine.runner import TERMINAL, JobRunner
from engine.store import Store

log = logging.getLogger("engine.app")

API_PREFIX = "/v1"
# Nebius serves deployments outside the /v1 base path.
DEPLOY_PREFIX = "/v0"
DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_FILES_PAGE = 10_000
# How deep a JSON request body may nest. A job request needs five levels
# (method.supervised.hyperparameters); deeper is a mistake or an attack on the parser.
MAX_JSON_DEPTH = 32


class Engine:
    """The engine's state: database, data folder, job runner and file processing."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.store: Store | None = None
        self.runner: JobRunner | None = None
        # Jobs' W&B keys, in this engine's memory only (see KeyVault).
        self.keys = KeyVault()
        self._processing: set[asyncio.Task[None]] = set()
        # Chat models, loaded on first use on a thread of their own (torch imported there).
        self.inference = Inference(config.models_dir, config.model_dirs, config.device)
        # Its own pool, so stopping never waits for a large file's validation to finish.
        self._validators = ThreadPoolExecutor(max_workers=2, thread_name_prefix="engine-validate")

    async def start(self) -> None:
        self.config.prepare()
        self.store = Store(self.config.db_path)
        self.runner = JobRunner(self.store, self.config, self.keys)
        await self.runner.start()
        for file_id in self.store.files_with_status("uploaded"):
            self.process_later(file_id)
        for deployment in self.store.list_deployments(deployments.VALIDATING):
            deployments.validate_later(self, deployment["name"])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.stop()
        for task in list(self._processing):
            task.cancel()
        for task in list(self._processing):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._validators.shutdown(wait=False, cancel_futures=True)
        self.inference.close()
        if self.store is not None:
            self.store.close()

    @property
    def db(self) -> Store:
        assert self.store is not None, "the engine is not started"
        return self.store

    @property
    def jobs(self) -> JobRunner:
        assert self.runner is not None, "the engine is not started"
        return self.runner

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Runs `work` in the background; stopping the engine cancels it."""
        task = asyncio.create_task(work, name=name)
        self._processing.add(task)
        task.add_done_callback(self._processing.discard)

    def process_later(self, file_id: str) -> None:
        self.spawn(self._process(file_id), f"engine-file-{file_id}")

    async def _process(self, file_id: str) -> None:
        stored = self.db.get_file(file_id)
        if stored is None:
            return
        try:
            valid, report, details = await asyncio.get_running_loop().run_in_executor(
                self._validators, validate_dataset, stored.path, stored.doc["filename"]
            )
        except Exception as exc:  # the file goes to error; the engine carries on
            log.exception("validating %s failed", file_id)
            valid, report, details = False, {}, f"The file could not be validated: {exc}"
        self.db.update_file(
            file_id,
            {"status": "processed" if valid else "error", "status_details": details},
            report=report,
        )


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _limit(request: Request, default: int, most: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"limit must be a whole number, not '{raw}'.", param="limit") from None
    if not 1 <= value <= most:
        raise ApiError(400, f"limit must be between 1 and {most}.", param="limit")
    return value


def _page(data: list[dict[str, Any]], has_more: bool) -> JSONResponse:
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


def _page_after(
    request: Request, items: list[dict[str, Any]], default: int, most: int
) -> JSONResponse:
    """The page of `items` (in the listing's order) that follows the `after` id of the
    query: none when that id is not listed."""
    after = request.query_params.get("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    limit = _limit(request, default, most)
    return _page(items[:limit], len(items) > limit)


def _not_json_constant(name: str) -> Any:
    # Python's json module reads NaN and Infinity, which JSON does not have; the engine could
    # not write them back in an answer either.
    raise ValueError(f"{name} is not a JSON value")


def _depth(value: Any) -> int:
    """How deeply `value` nests (a scalar is 0), without recursing."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            pending.extend((child, level + 1) for child in _children(item))
    return deepest


def _children(item: dict[str, Any] | list[Any]) -> list[Any]:
    return list(item.values()) if isinstance(item, dict) else item


async def json_body(request: Request) -> Any:
    try:
        body = json.loads(await request.body(), parse_constant=_not_json_constant)
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise ApiError(400, "The request body is not valid JSON.") from None
    except RecursionError:
        body = None  # nested too deeply for the parser: refused below like any deep body
    else:
        if _depth(body) <= MAX_JSON_DEPTH:
            return body
    raise ApiError(
        400, f"The request body nests more than {MAX_JSON_DEPTH} levels deep.", code="too_deep"
    )


# Models


def _models(engine: Engine) -> list[dict[str, Any]]:
    """The model objects the engine offers: its base models, then its fine-tuned models.

    A checkpoint's `fine_tuned_model_checkpoint` is not listed (one per epoch of every job
    would crowd the list; OpenAI leaves them out too): it is accepted wherever a model id is
    (a job's `model`, chat), and `GET fine_tuning/jobs/{id}/checkpoints` lists them.
    """
    from engine.model_registry import available_models

    data = [
        {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}
        for m in available_models(engine.config.models_dir, engine.config.model_dirs)
    ]
    for job in engine.db.jobs_with_status("succeeded"):
        if job.get("fine_tuned_model"):
            data.append(
                {
                    "id": job["fine_tuned_model"],
                    "object": "model",
                    "created": job.get("finished_at") or job["created_at"],
                    "owned_by": "engine",
                }
            )
    for deployment in engine.db.list_deployments(deployments.ACTIVE):
        data.append(
            {
                "id": deployment["name"],
                "object": "model",
                "created": deployment["created_at"],
                "owned_by": "engine",
            }
        )
    return data


async def list_models(request: Request) -> JSONResponse:
    return JSONResponse({"object": "list", "data": _models(_engine(request))})


async def retrieve_model(request: Request) -> JSONResponse:
    # The route takes the rest of the path: model ids hold slashes (`owner/name`).
    model_id = request.path_params["model_id"]
    for model in _models(_engine(request)):
        if model["id"] == model_id:
            return JSONResponse(model)
    raise not_found("model", model_id, "model")


# Files


async def upload_file(request: Request) -> JSONResponse:
    engine = _engine(request)
    file_id = new_id("file")
    dest = engine.config.files_dir / f"{file_id}.jsonl"
    upload = await receive_upload(request, dest, engine.config.max_upload_bytes)
    purpose = upload.fields.get("purpose")
    if purpose not in UPLOAD_PURPOSES:
        remove_quietly(dest)
        raise ApiError(
            400,
            f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}"
            + (f", not '{purpose}'." if purpose else "; none was given."),
            param="purpose",
        )
    doc = file_object(file_id, upload.filename, upload.size, purpose, "uploaded")
    engine.db.add_file(doc, dest, owned=True)
    engine.process_later(file_id)
    return JSONResponse(doc)


def _file(request: Request) -> tuple[Engine, Any]:
    engine = _engine(request)
    file_id = request.path_params["file_id"]
    stored = engine.db.get_file(file_id)
    if stored is None:
        raise not_found("file", file_id, "file_id")
    return engine, stored


async def retrieve_file(request: Request) -> JSONResponse:
    _, stored = _file(request)
    return JSONResponse(stored.doc)


async def list_files(request: Request) -> JSONResponse:
    engine = _engine(request)
    purpose = request.query_params.get("purpose")
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(400, "order must be 'asc' or 'desc'.", param="order")
    files = engine.db.list_files(purpose)
    if order == "desc":
        files.reverse()
    return _page_after(request, files, MAX_FILES_PAGE, MAX_FILES_PAGE)


async def file_content(request: Request) -> Response:
    _, stored = _file(request)
    if not stored.path.is_file():
        raise ApiError(
            404,
            f"The content of file '{stored.doc['id']}' is no longer on disk.",
            code="not_found",
            param="file_id",
        )
    name = Path(stored.doc["filename"]).name
    return FileResponse(stored.path, media_type="application/octet-stream", filename=name)


async def delete_file(request: Request) -> JSONResponse:
    engine, stored = _file(request)
    engine.db.delete_file(stored.doc["id"])
    if stored.owned:
        remove_quietly(stored.path)
    return JSONResponse({"id": stored.doc["id"], "object": "file", "deleted": True})


# Jobs


async def post_job(request: Request) -> JSONResponse:
    engine = _engine(request)
    job = create_job(engine.db, engine.config, await json_body(request), keys=engine.keys)
    engine.jobs.wake()
    return JSONResponse(job)


def _job(request: Request) -> tuple[Engine, dict[str, Any]]:
    engine = _engine(request)
    job_id = request.path_params["job_id"]
    job = engine.db.get_job(job_id)
    if job is None:
        raise not_found("fine-tuning job", job_id, "fine_tuning_job_id")
    return engine, job


async def retrieve_job(request: Request) -> JSONResponse:
    _, job = _job(request)
    return JSONResponse(job)


async def list_jobs(request: Request) -> JSONResponse:
    engine = _engine(request)
    jobs, has_more = engine.db.list_jobs(
        request.query_params.get("after"), _limit(request, DEFAULT_PAGE, MAX_PAGE)
    )
    return _page(jobs, has_more)


async def cancel_job(request: Request) -> JSONResponse:
    engine, job = _job(request)
    if job["status"] in TERMINAL:
        raise ApiError(
            400,
            f"Job '{job['id']}' has already {job['status']} and cannot be cancelled.",
            code="job_not_cancellable",
            param="fine_tuning_job_id",
        )
    await engine.jobs.cancel(job["id"])
    return JSONResponse(engine.db.get_job(job["id"]))


async def list_events(request: Request) -> JSONResponse:
    engine, job = _job(request)
    events, has_more = engine.db.list_events(
        job["id"], request.query_params.get("after"), _limit(request, DEFAULT_PAGE, MAX_PAGE)
    )
    return _page(events, has_more)


async def list_checkpoints(request: Request) -> JSONResponse:
    engine, job = _job(request)
    checkpoints = sorted(
        engine.db.list_checkpoints(job["id"]), key=lambda c: c["step_number"], reverse=True
    )
    return _page_after(request, checkpoints, MAX_PAGE, MAX_PAGE)


# Errors and authentication


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return ApiError(
            404,
            "Unknown path; this engine serves the API under /v1, deployments under /v0/models.",
            code="not_found",
        ).response()
    return ApiError(exc.status_code, str(exc.detail)).response()


async def client_gone(request: Request, _exc: Exception) -> Response:
    # The client hung up before its request body was complete (an upload cut short): nothing
    # is wrong here and nobody is left to answer, so one line, without a traceback.
    log.info(
        "%s %s: the client disconnected before sending the whole body",
        request.method,
        request.url.path,
    )
    return Response(status_code=400)


async def server_error(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error: %s", exc, exc_info=exc)
    return ApiError(
        500,
        "The engine hit an internal error; its log says more.",
        type="server_error",
        code="internal_error",
    ).response()


class BearerAuth:
    """Checks `Authorization: Bearer <key>` on every request when a key is configured."""

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        message = (
            "Incorrect API key provided."
            if given
            else "Missing API key: send 'Authorization: Bearer <ENGINE_API_KEY>'."
        )
        response = ApiError(401, message, code="invalid_api_key").response()
        await response(scope, receive, send)


def create_app(config: EngineConfig) -> ASGIApp:
    engine = Engine(config)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    p, d = API_PREFIX, DEPLOY_PREFIX
    routes = [
        Route(f"{p}/chat/completions", chat_completions, methods=["POST"]),
        Route(f"{d}/models", deployments.post_deployment, methods=["POST"]),
        Route(f"{d}/models", deployments.list_deployments, methods=["GET"]),
        # Full names hold a slash and a colon (`owner/model-LoRa:name-x1y2`).
        Route(f"{d}/models/{{name:path}}", deployments.retrieve_deployment, methods=["GET"]),
        Route(f"{d}/models/{{name:path}}", deployments.delete_deployment, methods=["DELETE"]),
        Route(f"{p}/models", list_models, methods=["GET"]),
        Route(f"{p}/models/{{model_id:path}}", retrieve_model, methods=["GET"]),
        Route(f"{p}/files", upload_file, methods=["POST"]),
        Route(f"{p}/files", list_files, methods=["GET"]),
        Route(f"{p}/files/{{file_id}}", retrieve_file, methods=["GET"]),
        Route(f"{p}/files/{{file_id}}", delete_file, methods=["DELETE"]),
        Route(f"{p}/files/{{file_id}}/content", file_content, methods=["GET"]),
        Route(f"{p}/fine_tuning/jobs", post_job, methods=["POST"]),
        Route(f"{p}/fine_tuning/jobs", list_jobs, methods=["GET"]),
        Route(f"{p}/fine_tuning/jobs/{{job_id}}", retrieve_job, methods=["GET"]),
        Route(f"{p}/fine_tuning/jobs/{{job_id}}/cancel", cancel_job, methods=["POST"]),
        Route(f"{p}/fine_tuning/jobs/{{job_id}}/events", list_events, methods=["GET"]),
        Route(f"{p}/fine_tuning/jobs/{{job_id}}/checkpoints", list_checkpoints, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ApiError: api_error_handler,
            ClientDisconnect: client_gone,
            HTTPException: http_error,
            Exception: server_error,
        },
    )
    app.state.engine = engine
    return BearerAuth(app, config.api_key)
