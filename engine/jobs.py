"""Creating a job: the request checked against the files, the model and the hyperparameters."""

import os
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from client.hyperparameters import SUFFIX_MAX_CHARS
from client.hyperparameters import describe_range as interval
from engine.config import EngineConfig
from engine.errors import ApiError
from engine.ids import new_id, now
from engine.model_registry import (
    FineTunedModelError,
    Lineage,
    available_models,
    configured_model_folder,
    is_fine_tuned_id,
    is_hub_id,
    resolve_fine_tuned,
)
from engine.objects import event_object, public_integrations
from engine.store import Store, StoredFile
from engine.training.spec import (
    RANGES,
    Hyperparameters,
    check_range,
    describe_range,
    format_number,
)
from engine.worker_messages import BASE_VALID_LOSS

# The one fine-tuning method the engine trains (OpenAI's `method.type` also names dpo and
# reinforcement; Nebius's names spec-draft).
SUPERVISED = "supervised"
# The openai SDK's typed hyperparameter: a factor applied to the default learning rate.
MULTIPLIER = "learning_rate_multiplier"


class JobRequest(BaseModel):
    """The body of `POST fine_tuning/jobs`; unknown fields are ignored, as OpenAI does."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = None
    suffix: str | None = Field(default=None, max_length=SUFFIX_MAX_CHARS)
    seed: int | None = None
    integrations: list[dict[str, Any]] | None = None
    # OpenAI's newer shape: {"type": "supervised", "supervised": {"hyperparameters": {...}}}.
    method: dict[str, Any] | None = None

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_not_a_boolean(cls, value: Any) -> Any:
        return check_range("seed", value) if isinstance(value, bool) else value

    @field_validator("seed", mode="after")
    @classmethod
    def _seed_in_range(cls, value: int | None) -> int | None:
        return None if value is None else check_range("seed", value)


class WandbIntegration(BaseModel):
    """The `wandb` object of a `{"type": "wandb", "wandb": {...}}` integration."""

    model_config = ConfigDict(extra="ignore")

    project: str = Field(min_length=1)
    name: str | None = None
    entity: str | None = None
    api_key: SecretStr | None = None

    def public(self) -> dict[str, Any]:
        """What the worker's spec and the database may hold: everything but the key."""
        return self.model_dump(exclude={"api_key"})


class KeyVault:
    """Jobs' W&B API keys, held in the engine's memory only: each `engine.app.Engine` has one.

    Never written to the database, a spec file, an event or a log: the runner hands a key to
    its job's worker in the worker's environment and forgets it when the job ends. A key does
    not survive an engine restart; the runner says so on a job that resumes after one.
    """

    def __init__(self) -> None:
        self._keys: dict[str, SecretStr] = {}

    def put(self, job_id: str, key: SecretStr) -> None:
        self._keys[job_id] = key

    def get(self, job_id: str) -> str | None:
        key = self._keys.get(job_id)
        return key.get_secret_value() if key is not None else None

    def drop(self, job_id: str) -> None:
        self._keys.pop(job_id, None)


def _loc(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"])


def parse_request(body: Any) -> JobRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    try:
        return JobRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ApiError(
            422,
            f"Invalid value for '{_loc(first)}': {first['msg']}.",
            param=_loc(first),
            code="invalid_value",
        ) from None


def _invalid(param: str, message: str) -> ApiError:
    return ApiError(
        422, f"Invalid value for '{param}': {message}.", param=param, code="invalid_value"
    )


def _given_hyperparameters(request: JobRequest) -> tuple[dict[str, Any], str]:
    """The hyperparameters the request sends, and where it sends them (for error params).

    They come in `hyperparameters` (Nebius's shape, and what this project's client sends) or
    in `method.supervised.hyperparameters` (OpenAI's newer shape), never both: Nebius's
    contract never pairs the two, and guessing which one wins would train with values the
    caller did not mean.
    """
    if request.method is None:
        return dict(request.hyperparameters or {}), "hyperparameters"
    if request.hyperparameters is not None:
        raise ApiError(
            400,
            "'method' and 'hyperparameters' cannot both be given: send the hyperparameters "
            "in 'hyperparameters', or in 'method.supervised.hyperparameters' with "
            "'method.type' 'supervised'.",
            param="method",
            code="invalid_request",
        )
    method = request.method
    kind = method.get("type")
    if kind is None:
        raise _invalid("method.type", f"required; this engine trains '{SUPERVISED}'")
    if not isinstance(kind, str):
        raise _invalid("method.type", f"must be a string such as '{SUPERVISED}'")
    if kind != SUPERVISED:
        shown = kind if len(kind) <= 40 else kind[:40] + "…"
        raise _invalid("method.type", f"this engine trains only '{SUPERVISED}', not '{shown}'")
    supervised = method.get(SUPERVISED)
    if supervised is None:
        return {}, f"method.{SUPERVISED}.hyperparameters"
    if not isinstance(supervised, dict):
        raise _invalid(f"method.{SUPERVISED}", "must be an object")
    nested = supervised.get("hyperparameters")
    if nested is not None and not isinstance(nested, dict):
        raise _invalid(f"method.{SUPERVISED}.hyperparameters", "must be an object")
    return dict(nested or {}), f"method.{SUPERVISED}.hyperparameters"


def _apply_multiplier(given: dict[str, Any], where: str) -> None:
    """Turns the openai SDK's `learning_rate_multiplier` into the engine's `learning_rate`.

    The factor multiplies the engine's default learning rate; "auto" (already dropped by the
    caller) keeps the default. The result must be a learning rate the engine accepts, so the
    factor's range follows from learning_rate's.
    """
    if MULTIPLIER not in given:
        return
    factor = given.pop(MULTIPLIER)
    param = f"{where}.{MULTIPLIER}"
    default: float = Hyperparameters.model_fields["learning_rate"].default
    low, high, low_inclusive, high_inclusive = RANGES["learning_rate"]
    scaled_high = None if high is None else high / default
    factor_range = interval((low / default, scaled_high, low_inclusive, high_inclusive))
    if "learning_rate" in given:
        raise ApiError(
            422,
            f"Invalid hyperparameter '{MULTIPLIER}': give it or 'learning_rate', not both.",
            param=param,
            code="invalid_hyperparameter",
        )
    if isinstance(factor, bool) or not isinstance(factor, int | float):
        raise ApiError(
            422,
            f"Invalid hyperparameter '{MULTIPLIER}': must be a number in {factor_range} or 'auto'.",
            param=param,
            code="invalid_hyperparameter",
        )
    # In decimal, so that 100000 x 1e-05 is exactly the bound 1, not 1.0000000000000002.
    rate = float(Decimal(repr(factor)) * Decimal(repr(default)))
    try:
        given["learning_rate"] = check_range("learning_rate", rate)
    except ValueError:  # PydanticCustomError is one
        raise ApiError(
            422,
            f"Invalid hyperparameter '{MULTIPLIER}': must be in {factor_range} "
            f"(got {format_number(factor)}): "
            f"it multiplies the default learning rate {default:g}, and learning_rate must be "
            f"in {describe_range('learning_rate')}.",
            param=param,
            code="invalid_hyperparameter",
        ) from None


def parse_hyperparameters(request: JobRequest) -> Hyperparameters:
    given, where = _given_hyperparameters(request)
    # The OpenAI SDK may send "auto": it means the default.
    given = {k: v for k, v in given.items() if not (isinstance(v, str) and v == "auto")}
    _apply_multiplier(given, where)
    try:
        return Hyperparameters.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _loc(first)
        known = ", ".join([*Hyperparameters.model_fields, MULTIPLIER])
        hint = f" Known hyperparameters: {known}." if first["type"] == "extra_forbidden" else ""
        raise ApiError(
            422,
            f"Invalid hyperparameter '{name}': {first['msg']}.{hint}",
            param=f"{where}.{name}",
            code="invalid_hyperparameter",
        ) from None


def parse_wandb(request: JobRequest) -> WandbIntegration | None:
    """The job's W&B integration, if it has one; other integration types are only shown."""
    found = [
        (index, item)
        for index, item in enumerate(request.integrations or [])
        if item.get("type") == "wandb"
    ]
    if not found:
        return None
    if len(found) > 1:
        raise ApiError(
            422,
            "Invalid value for 'integrations': a job logs to at most one wandb integration.",
            param="integrations",
            code="invalid_value",
        )
    index, item = found[0]
    try:
        return WandbIntegration.model_validate(item.get("wandb"))
    except ValidationError as exc:
        first = exc.errors()[0]
        # The message names the field and the rule, never the value sent (it may be the key).
        name = ".".join(["integrations", str(index), "wandb", *map(str, first["loc"])])
        raise ApiError(
            422,
            f"Invalid value for '{name}': {first['msg']}.",
            param=name,
            code="invalid_value",
        ) from None


def _online() -> bool:
    return not os.environ.get("HF_HUB_OFFLINE") and not os.environ.get("TRANSFORMERS_OFFLINE")


def check_model(model: str, config: EngineConfig, store: Store) -> Lineage | None:
    """Refuses a model the engine cannot train; a fine-tuned one's lineage, else None."""
    known = [m.id for m in available_models(config.models_dir, config.model_dirs)]
    if model in known:
        return None
    if is_fine_tuned_id(model):
        try:
            return resolve_fine_tuned(model, store)
        except FineTunedModelError as exc:
            raise ApiError(400, str(exc), param="model", code=exc.code) from None
    # A path names a model only when it is one of the configured model folders: never a home
    # folder to expand, nor any folder of this machine a caller happens to know.
    if configured_model_folder(model, config.model_dirs) is not None:
        return None
    if is_hub_id(model) and _online():
        return None  # a Hugging Face id: the worker downloads it, or fails the job saying why
    raise ApiError(
        400,
        f"Model '{model}' is not available on this engine. "
        f"Available: {', '.join(known) or 'none'}, "
        "or the fine_tuned_model of a job that succeeded here.",
        param="model",
        code="model_not_found",
    )


def check_file(store: Store, file_id: str, param: str) -> StoredFile:
    def refused(why: str, code: str = "invalid_file") -> ApiError:
        return ApiError(400, f"Invalid {param}: {why}", param=param, code=code)

    stored = store.get_file(file_id)
    if stored is None:
        raise refused(f"no file with id '{file_id}'.")
    doc = stored.doc
    if doc["purpose"] != "fine-tune":
        raise refused(f"file '{file_id}' has purpose '{doc['purpose']}', not 'fine-tune'.")
    if doc["status"] == "uploaded":
        raise refused(
            f"file not ready yet: '{file_id}' is still being processed.", code="file_not_ready"
        )
    if doc["status"] == "error":
        raise refused(f"file '{file_id}' failed validation: {doc.get('status_details')}")
    return stored


def _file_counts(stored: StoredFile) -> dict[str, int]:
    stats = (stored.report or {}).get("stats") or {}
    return {
        "examples": int(stats.get("examples") or 0),
        "tokens": int((stats.get("tokens") or {}).get("total") or 0),
    }


def _created_event(job_id: str, model: str, lineage: Lineage | None) -> dict[str, Any]:
    if lineage is None:
        return event_object(f"Created fine-tuning job {job_id} on {model}.")
    return event_object(
        f"Created fine-tuning job {job_id} on {model}: it starts from {lineage.base_model} "
        f"with {len(lineage.parents)} fine-tuning generation(s) applied "
        f"({len(lineage.adapters)} LoRA adapter(s) merged into the weights).",
        data=lineage.public(),
    )


def create_job(store: Store, config: EngineConfig, body: Any, *, keys: KeyVault) -> dict[str, Any]:
    """Checks the request, records the job and its first events; the job is left `queued`."""
    request = parse_request(body)
    hyperparameters = parse_hyperparameters(request)
    wandb = parse_wandb(request)
    # An empty key is no key: the worker then uses whatever W&B login the engine has.
    wandb_key = (
        wandb.api_key if wandb and wandb.api_key and wandb.api_key.get_secret_value() else None
    )
    lineage = check_model(request.model, config, store)
    training = check_file(store, request.training_file, "training_file")
    validation = (
        check_file(store, request.validation_file, "validation_file")
        if request.validation_file
        else None
    )
    job_id = new_id("ftjob")
    seed = request.seed if request.seed is not None else 42
    job = {
        "id": job_id,
        "object": "fine_tuning.job",
        "model": request.model,
        "created_at": now(),
        "finished_at": None,
        "status": "validating_files",
        "training_file": request.training_file,
        "validation_file": request.validation_file,
        "hyperparameters": hyperparameters.model_dump(),
        "result_files": [],
        "trained_tokens": None,
        "fine_tuned_model": None,
        "error": None,
        "trained_steps": None,
        "total_steps": None,
        "estimated_finish": None,
        "seed": seed,
        "suffix": request.suffix,
        "integrations": public_integrations(request.integrations or []),
        "organization_id": "engine",
        # Not in Nebius's job object: the model the weights first came from (== `model`
        # unless `model` is a fine-tuned model of this engine).
        "base_model": lineage.base_model if lineage else request.model,
        # Not in Nebius's job object either: the validation loss of the model before
        # training, set once the worker has measured it (jobs with a validation file only).
        BASE_VALID_LOSS: None,
    }
    internal = {
        "training_path": str(training.path),
        "validation_path": str(validation.path) if validation else None,
        "lineage": lineage.model_dump(mode="json") if lineage else None,
        "wandb": wandb.public() if wandb else None,
        # Whether the request carried a key, which only `keys` (the engine's vault) holds.
        "wandb_key_given": wandb_key is not None,
    }
    if wandb_key is not None:
        keys.put(job_id, wandb_key)
    store.add_job(job, internal)
    store.add_event(job_id, _created_event(job_id, request.model, lineage))
    counts = _file_counts(training)
    message = (
        f"Files validated: training file has {counts['examples']:,} examples, "
        f"about {counts['tokens']:,} tokens"
    )
    data: dict[str, Any] = {"training": counts}
    if validation is not None:
        vcounts = _file_counts(validation)
        data["validation"] = vcounts
        message += f"; validation file has {vcounts['examples']:,} examples"
    store.add_event(job_id, event_object(message + ".", data=data))
    ahead = len(store.jobs_with_status("queued", "running"))
    store.add_event(
        job_id,
        event_object(
            "Job queued." if ahead == 0 else f"Job queued behind {ahead} other job(s).",
            data={"jobs_ahead": ahead},
        ),
    )
    return store.update_job(job_id, {"status": "queued"})
