"""Which two models a job's comparison runs: its base model and its fine-tuned one.

- A model given by the caller wins (on Nebius: a deployment's full name).
- A server that names fine-tuned models (the local engine, OpenAI: the job has
  `fine_tuned_model`): the chosen checkpoint's `fine_tuned_model_checkpoint` (the best one by
  default, as `finetune download` and `deploy` choose), else the job's `fine_tuned_model`.
- Nebius names none (a checkpoint becomes a model by deployment): an active deployment whose
  source is this job (`<job id>:<checkpoint id>`), the chosen checkpoint's first, else the
  newest.
- The base model: the caller's, else the deployment's base model, else the job's model mapped
  to its inference id (`client.deployments.inference_base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from client.checkpoints import CheckpointNotFound, ChosenCheckpoint, choose_checkpoint
from client.compare.results import CompareModel
from client.deployments import Deployment, inference_base
from client.errors import NotFoundError
from client.models import Checkpoint, Job

BASE_LABEL = "base"
TUNED_LABEL = "fine-tuned"


class TargetError(ValueError):
    """No model to compare: says why and what to give instead."""


class TargetClient(Protocol):
    async def list_checkpoints(self, job_id: str) -> list[Checkpoint]: ...

    async def list_deployments(self) -> list[Deployment]: ...


@dataclass(frozen=True)
class Targets:
    base: CompareModel
    tuned: CompareModel
    how: str  # one line: where the fine-tuned model came from

    @property
    def models(self) -> list[CompareModel]:
        return [self.base, self.tuned]


def _job_deployments(deployments: Sequence[Deployment], job_id: str) -> list[Deployment]:
    return [
        d for d in deployments if (d.origin or "").split(":", 1)[0] == job_id or d.job_id == job_id
    ]


def _checkpoint_of(deployment: Deployment) -> str | None:
    origin = deployment.origin or ""
    return deployment.checkpoint_id or (origin.split(":", 1)[1] if ":" in origin else None)


def _choose(checkpoints: Sequence[Checkpoint], wanted: str | None) -> ChosenCheckpoint | None:
    try:
        return choose_checkpoint(checkpoints, wanted)
    except CheckpointNotFound as exc:
        if wanted:
            raise TargetError(str(exc)) from None
        return None


async def find_targets(
    client: TargetClient,
    job: Job,
    *,
    model: str | None = None,
    base_model: str | None = None,
    checkpoint: str | None = None,
) -> Targets:
    """The base and fine-tuned models for `job`; TargetError when there is no fine-tuned
    model to use (yet)."""
    model = (model or "").strip() or None
    base_given = (base_model or "").strip() or None

    def base(deployed_onto: str | None = None) -> CompareModel:
        chosen = base_given or deployed_onto or inference_base(job.model or "")
        if not chosen:
            raise TargetError(f"job {job.id} does not name its model: give --base-model")
        return CompareModel(label=BASE_LABEL, model=chosen)

    if model is not None:
        return Targets(base(), CompareModel(label=TUNED_LABEL, model=model), "given")

    if job.fine_tuned_model:
        chosen = _choose(await client.list_checkpoints(job.id), checkpoint)
        if chosen is not None and chosen.checkpoint.fine_tuned_model_checkpoint:
            name = chosen.checkpoint.fine_tuned_model_checkpoint
            return Targets(base(), CompareModel(label=TUNED_LABEL, model=name), chosen.describe())
        return Targets(
            base(),
            CompareModel(label=TUNED_LABEL, model=job.fine_tuned_model),
            "the job's fine-tuned model",
        )

    try:
        deployments = _job_deployments(await client.list_deployments(), job.id)
    except NotFoundError:  # a server without `/v0/models`
        deployments = []
    active = [d for d in deployments if d.is_active]
    if checkpoint:
        chosen = _choose(await client.list_checkpoints(job.id), checkpoint)
        wanted = chosen.id if chosen else None
        active = [d for d in active if _checkpoint_of(d) == wanted]
        if not active:
            raise TargetError(
                f"checkpoint {checkpoint} of job {job.id} has no active deployment: deploy it "
                f"with `finetune deploy {job.id} {checkpoint}`, or give the model with --model"
            )
    if not active:
        waiting = [d for d in deployments if not d.is_settled]
        if waiting:
            raise TargetError(
                f"the deployment of job {job.id} is still {waiting[0].state}: "
                f"wait for it with `finetune deployments {waiting[0].name}`, then compare again"
            )
        if not job.is_terminal:
            raise TargetError(
                f"job {job.id} is {job.status}: compare it when it has a deployed checkpoint"
            )
        raise TargetError(
            f"job {job.id} has no fine-tuned model to chat with: on Nebius a checkpoint "
            f"becomes one by deployment (`finetune deploy {job.id}`); or give a deployment's "
            "full name with --model"
        )
    best = _choose(await client.list_checkpoints(job.id), None) if len(active) > 1 else None
    preferred = [d for d in active if best is not None and _checkpoint_of(d) == best.id]
    deployment = (preferred or sorted(active, key=lambda d: d.created_at or 0, reverse=True))[0]
    return Targets(
        base(deployment.base_model),
        CompareModel(label=TUNED_LABEL, model=deployment.name),
        f"deployment {deployment.name} (from {deployment.origin})",
    )
