"""Custom models: a LoRA checkpoint deployed as a serverless model, Nebius's `/v0/models`.

    POST   /v0/models              {"name", "base_model", "source": "<job>:<checkpoint>",
                                    "description"} -> {"name": <full name>, "status": "validating"}
    GET    /v0/models/{full name}  validating (a first answer may have no status), then active,
                                    or error with status_reason
    GET    /v0/models              a bare JSON array (a wrapped {"data": [...]} is accepted too)
    DELETE /v0/models/{full name}  status "deleted"

Nebius generates the full name (`meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:<name>-JuNN` in
its cookbook): it is stored as answered, never derived from the name asked for. The full name
holds a `/` and a `:`, and goes into the path as it is (as the cookbook sends it).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from client.errors import NebiusError
from client.models import Job, NebiusObject

VALIDATING, ACTIVE, ERROR, DELETED = "validating", "active", "error", "deleted"

# Fine-tuning id -> the id of the same model on Nebius's inference side, where they differ
# (Nebius's cookbook: post-training/fine-tuning-1 fine-tunes meta-llama/Llama-3.1-8B-Instruct
# and deploys onto meta-llama/Meta-Llama-3.1-8B-Instruct; distillation-1 deploys a
# Qwen/Qwen3-4B fine-tune onto Qwen/Qwen3-4B-fast). A model not listed deploys onto its own id;
# `finetune deploy --base-model` overrides either.
INFERENCE_BASE_IDS: dict[str, str] = {
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct": "meta-llama/Meta-Llama-3.1-70B-Instruct",
    "Qwen/Qwen3-4B": "Qwen/Qwen3-4B-fast",
}

# What Nebius and the local engine accept as a deployment name (it becomes part of a model
# id): letters, digits, '.', '_' and '-', starting and ending with a letter or digit.
NAME_MAX_CHARS = 64
NAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
LORA_MARK = "-LoRa:"


class Deployment(NebiusObject):
    """A custom model as `/v0/models` answers it (every field but the name may be absent)."""

    name: str
    base_model: str | None = None
    source: str | None = None
    description: str | None = None
    created_at: int | None = None
    # None: Nebius's first answers to GET may carry no status while it validates.
    status: str | None = None
    status_reason: str | None = None
    job_id: str | None = None
    checkpoint_id: str | None = None
    type: str | None = None

    @property
    def state(self) -> str:
        """The status, with "no status yet" read as validating."""
        return (self.status or VALIDATING).lower()

    @property
    def is_active(self) -> bool:
        return self.state == ACTIVE

    @property
    def is_failed(self) -> bool:
        return self.state == ERROR

    @property
    def is_settled(self) -> bool:
        """Active, failed or deleted: nothing more to wait for."""
        return self.state in (ACTIVE, ERROR, DELETED)

    @property
    def origin(self) -> str | None:
        """`<job id>:<checkpoint id>`: `source`, else the job and checkpoint ids."""
        if self.source:
            return self.source
        if self.job_id and self.checkpoint_id:
            return f"{self.job_id}:{self.checkpoint_id}"
        return None


class DeploymentFailed(NebiusError):
    """Nebius could not validate the deployment (status `error`)."""

    default_hint = (
        "Only LoRA checkpoints of some base models deploy serverless: check that the "
        "base model is right (--base-model) and that the job was a LoRA fine-tune."
    )


class DeploymentTimeout(NebiusError):
    """The deployment was still validating when the wait ran out."""

    default_hint = (
        "It may still become active: check with `finetune deployments NAME`, or wait longer "
        "with --timeout."
    )


def v0_root(base_url: str) -> str:
    """The root of the `/v0` calls for a `/v1` base URL: `https://host/v1/` -> `https://host/v0/`
    (the version segment is replaced; a base URL without one gets `v0/` added)."""
    parts = urlsplit(base_url)
    segments = [s for s in parts.path.split("/") if s]
    if segments and re.fullmatch(r"v\d+", segments[-1]):
        segments.pop()
    path = "/" + "/".join([*segments, "v0"]) + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def deployment_path(full_name: str) -> str:
    """The full name as a path below `/v0/models/`: `/` and `:` as they are (Nebius's
    cookbook sends them so), anything else that is not URL-safe escaped."""
    return quote(full_name, safe="/:@")


def inference_base(fine_tuning_model: str, override: str | None = None) -> str:
    """The base model id to deploy onto: `override`, else the known inference id of the
    fine-tuning model, else the fine-tuning id itself."""
    if override and override.strip():
        return override.strip()
    return INFERENCE_BASE_IDS.get(fine_tuning_model, fine_tuning_model)


def is_lora(job: Job) -> bool | None:
    """Whether the job trained LoRA adapters: its hyperparameters at the top level or under
    `method.supervised.hyperparameters` (Nebius); None when the job does not say."""
    value: Any = job.effective_hyperparameters.get("lora")
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def not_lora_message(job: Job) -> str:
    """What to do with a full fine-tune instead of deploying it."""
    text = (
        f"job {job.id} is a full fine-tune (lora: false), and only LoRA checkpoints deploy "
        f"as serverless models. Download the checkpoint with `finetune download {job.id}` "
        "and serve it yourself, or fine-tune again with --lora."
    )
    if job.fine_tuned_model:  # the local engine (and OpenAI) serve a full fine-tune directly
        text += f" This server also answers chats with it: finetune chat {job.fine_tuned_model}"
    return text


def check_name(name: str) -> str:
    """`name` when Nebius accepts it as a deployment name; ValueError saying what is wrong."""
    if len(name) > NAME_MAX_CHARS:
        raise ValueError(f"deployment name {name!r} is over {NAME_MAX_CHARS} characters")
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"deployment name {name!r} may hold only letters, digits, '.', '_' and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def default_name(job: Job, step: int) -> str:
    """A name for a deployment nobody named: the job's suffix (or "ft"), the job id's first
    characters, and the step: `demo-run-49b46256-step40`."""
    stem = _NOT_NAME_CHARS.sub("-", job.suffix or "").strip("-._") or "ft"
    short = job.id.removeprefix("ftjob-").removeprefix("ftjob_")[:8]
    tail = f"-{_NOT_NAME_CHARS.sub('-', short).strip('-._')}-step{step}".replace("--", "-")
    stem = stem[: NAME_MAX_CHARS - len(tail)].rstrip("-._") or "ft"
    return f"{stem}{tail}"


def requested_name_of(full_name: str) -> str:
    """The name asked for, read back from a full name (`<base>-LoRa:<name>-XXXX` -> <name>);
    only to recognise a deployment this client may have created, never to address one."""
    _, mark, rest = full_name.rpartition(LORA_MARK)
    tail = rest if mark else full_name
    return tail.rsplit("-", 1)[0] if "-" in tail else tail
