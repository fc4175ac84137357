"""Deployments: a LoRA checkpoint made a model to chat with, under Nebius's `/v0/models` calls.

    POST   /v0/models              {"name", "base_model", "source", "description"}
    GET    /v0/models              a bare JSON array of the deployments
    GET    /v0/models/{full name}  validating, then active (or error with status_reason)
    DELETE /v0/models/{full name}  status "deleted"; the name answers 404 afterwards

`source` is `<job id>` (its last checkpoint) or `<job id>:<checkpoint id>`. The engine names
the deployment `<base model>-LoRa:<name>-<4 random characters>`, as Nebius does. A new
deployment is `validating` while the inference thread loads its base with the adapter merged
(which checks that the adapter fits the base); then it is `active`, its model already loaded
for the first chat, or `error` with the reason. Only LoRA checkpoints deploy: a full
fine-tune is a whole model, which chat completions serve by its `fine_tuned_model` id.
Deployments live in the engine's database and survive a restart; one still validating
when the engine stopped is validated again when it starts.
"""

import logging
import secrets
import string
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.errors import ApiError
from engine.ids import now
from engine.inference import ModelLoadError, Weights
from engine.model_registry import FineTunedModelError, Lineage, resolve_fine_tuned
from engine.store import Store

if TYPE_CHECKING:
    from engine.app import Engine

log = logging.getLogger("engine.deployments")

NAME_MAX = 64
# A deployment name becomes part of a model id: no slashes, colons or spaces.
NAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$"
DESCRIPTION_MAX = 1_000
LORA_MARK = "-LoRa:"
SUFFIX_CHARS = string.ascii_lowercase + string.digits
SUFFIX_LENGTH = 4
# Tries at a free random suffix before giving up (36^4 names per base and name).
NAME_TRIES = 20

VALIDATING, ACTIVE, ERROR, DELETED = "validating", "active", "error", "deleted"


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)
    source: str = Field(min_length=1)
    base_model: str | None = None
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)


def _bad(message: str, param: str | None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def parse_request(body: Any) -> DeployRequest:
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.", None, "invalid_request")
    try:
        return DeployRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        hint = (
            " (letters, digits, '.', '_' and '-', starting and ending with a letter or digit)"
            if where == "name" and first["type"] == "string_pattern_mismatch"
            else ""
        )
        raise _bad(f"Invalid value for '{where}': {first['msg']}{hint}.", where) from None


def _checkpoint(store: Store, job: dict[str, Any], checkpoint_id: str | None) -> dict[str, Any]:
    """The checkpoint `source` names: the given one, or the job's last."""
    checkpoints = sorted(store.list_checkpoints(job["id"]), key=lambda c: c["step_number"])
    if not checkpoints:
        raise _bad(f"Job {job['id']} has no checkpoint to deploy.", "source", "invalid_source")
    if checkpoint_id is None:
        return checkpoints[-1]
    for checkpoint in checkpoints:
        if checkpoint["id"] == checkpoint_id:
            return checkpoint
    raise _bad(
        f"Job {job['id']} has no checkpoint '{checkpoint_id}'; its checkpoints: "
        + ", ".join(c["id"] for c in checkpoints)
        + ".",
        "source",
        "invalid_source",
    )


def resolve_source(store: Store, request: DeployRequest) -> tuple[dict[str, Any], Lineage]:
    """The checkpoint to deploy and the weights it makes; 400 naming what is wrong."""
    job_id, _, checkpoint_id = request.source.partition(":")
    job = store.get_job(job_id)
    if job is None:
        raise _bad(
            f"Invalid source '{request.source}': no fine-tuning job '{job_id}'; "
            "give '<job id>' or '<job id>:<checkpoint id>'.",
            "source",
            "invalid_source",
        )
    checkpoint = _checkpoint(store, job, checkpoint_id or None)
    if not job["hyperparameters"].get("lora"):
        raise _bad(
            f"Job {job_id} is a full fine-tune, and only LoRA checkpoints deploy. Its weights "
            "are a whole model: chat with it directly, with model "
            f"'{checkpoint['fine_tuned_model_checkpoint']}' (this checkpoint) or "
            f"'{job.get('fine_tuned_model')}' (the job's result).",
            "source",
            "not_lora",
        )
    allowed = {job["base_model"], job["model"]}
    if request.base_model is not None and request.base_model not in allowed:
        raise _bad(
            f"Invalid base_model '{request.base_model}': job {job_id} trained its adapter on "
            f"{job['model']}" + (f" (from {job['base_model']})" if len(allowed) > 1 else "") + ".",
            "base_model",
            "base_model_mismatch",
        )
    try:
        lineage = resolve_fine_tuned(checkpoint["fine_tuned_model_checkpoint"], store)
    except FineTunedModelError as exc:
        raise _bad(str(exc), "source", exc.code) from None
    return checkpoint, lineage


def _full_name(store: Store, base_model: str, name: str) -> str:
    for _ in range(NAME_TRIES):
        suffix = "".join(secrets.choice(SUFFIX_CHARS) for _ in range(SUFFIX_LENGTH))
        full = f"{base_model}{LORA_MARK}{name}-{suffix}"
        if store.get_deployment(full) is None:
            return full
    raise ApiError(409, f"Every name '{name}-XXXX' on {base_model} is taken; pick another name.")


def create(engine: "Engine", body: Any) -> dict[str, Any]:
    """Records the deployment as `validating` and starts validating it."""
    store = engine.db
    request = parse_request(body)
    checkpoint, lineage = resolve_source(store, request)
    job = store.get_job(checkpoint["fine_tuning_job_id"]) or {}
    doc = {
        "type": "text2text",
        "name": "",
        "base_model": job["base_model"],
        "source": f"{job['id']}:{checkpoint['id']}",
        "description": request.description,
        "created_at": now(),
        "status": VALIDATING,
        "status_reason": None,
        "job_id": job["id"],
        "checkpoint_id": checkpoint["id"],
        "file_id": None,
    }
    while True:
        doc["name"] = _full_name(store, job["base_model"], request.name)
        if store.add_deployment(doc, {"lineage": lineage.model_dump(mode="json")}):
            break
    validate_later(engine, doc["name"])
    return doc


def validate_later(engine: "Engine", name: str) -> None:
    engine.spawn(validate(engine, name), f"engine-deploy-{name}")


async def validate(engine: "Engine", name: str) -> None:
    """Loads the deployment's weights (the check), then marks it active or error."""
    recorded = engine.db.deployment_internal(name).get("lineage")
    if recorded is None:
        return  # deleted before its validation started
    weights = Weights.of(Lineage.model_validate(recorded))
    try:
        await engine.inference.call(engine.inference.load, weights)
    except ModelLoadError as exc:
        log.info("deployment %s failed validation: %s", name, exc)
        changes = {"status": ERROR, "status_reason": f"The adapter could not be loaded: {exc}"}
    else:
        changes = {"status": ACTIVE, "status_reason": None}
    # A deployment deleted meanwhile stays deleted.
    engine.db.update_deployment(name, changes, only_if_status=VALIDATING)


def weights_of(store: Store, name: str) -> Weights | None:
    """The weights of an active deployment named `name`; None when there is none.

    Raises ApiError when the deployment exists but cannot answer yet (or at all).
    """
    doc = store.get_deployment(name)
    if doc is None:
        return None
    if doc["status"] == VALIDATING:
        raise ApiError(
            400,
            f"Deployment '{name}' is still validating; poll GET /v0/models/{name} until it "
            "is active.",
            param="model",
            code="model_not_ready",
        )
    if doc["status"] == ERROR:
        raise ApiError(
            400,
            f"Deployment '{name}' failed validation: {doc['status_reason']}",
            param="model",
            code="model_not_ready",
        )
    return Weights.of(Lineage.model_validate(store.deployment_internal(name)["lineage"]))


# Routes


def _engine(request: Request) -> "Engine":
    return request.app.state.engine


def _not_found(name: str) -> ApiError:
    return ApiError(404, f"No deployed model named '{name}'.", param="name", code="model_not_found")


async def post_deployment(request: Request) -> JSONResponse:
    from engine.app import json_body

    engine = _engine(request)
    return JSONResponse(create(engine, await json_body(request)))


async def list_deployments(request: Request) -> JSONResponse:
    return JSONResponse(_engine(request).db.list_deployments())


async def retrieve_deployment(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    doc = _engine(request).db.get_deployment(name)
    if doc is None:
        raise _not_found(name)
    return JSONResponse(doc)


async def delete_deployment(request: Request) -> JSONResponse:
    name = request.path_params["name"]
    store = _engine(request).db
    doc = store.get_deployment(name)
    if doc is None or not store.delete_deployment(name):
        raise _not_found(name)
    return JSONResponse({**doc, "status": DELETED, "status_reason": None})
