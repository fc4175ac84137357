"""A job's cost for the card, the summary, the form and the first message.

The price comes from the client (`NebiusClient.training_price`: free on the local engine, the
API's or the configured or published price on Nebius), the token count from the report of
the training file the bot checked (the store leads from a Nebius file id back to its upload).
A price must never hold up a job or a card: whatever fails here leaves the cost out, logged.
"""

from __future__ import annotations

import logging

from bot.blocks.cost import JobCosts
from bot.store import Store, Upload
from client import Job, NebiusClient
from client.config import resolve_price_config
from client.cost import (
    LARGE_FROM_B,
    PUBLISHED_LARGE_PER_M,
    PUBLISHED_SMALL_PER_M,
    CostEstimate,
    TrainingPrice,
    estimate,
    job_cost,
)
from client.hyperparameters import LOCAL_ENGINE, Hyperparameters
from client.validation.report import ValidationReport

log = logging.getLogger(__name__)


def tokens_per_epoch(upload: Upload | None) -> int | None:
    """The training tokens the validator counted in an upload's report; None without one."""
    if upload is None or upload.report is None:
        return None
    try:
        report = ValidationReport.model_validate(upload.report)
    except ValueError:
        return None
    return report.stats.tokens.total if report.role == "training" else None


def job_epochs(job: Job) -> int:
    value = job.effective_hyperparameters.get("n_epochs")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return int(value)
    return Hyperparameters().n_epochs


class Costs:
    def __init__(self, store: Store, nebius: NebiusClient | None) -> None:
        self.store = store
        self.nebius = nebius

    @property
    def free(self) -> bool:
        """The local engine: training costs nothing there."""
        if self.nebius is None:
            return False
        return self.nebius.range_profile.key == LOCAL_ENGINE.key

    async def price(self, model: str) -> TrainingPrice | None:
        if self.nebius is None:
            return None
        try:
            return await self.nebius.training_price(model)
        except Exception as error:  # a bad price setting, an unreachable API: no cost shown
            log.warning("no training price for %s (%s)", model, error)
            return None

    async def plan_estimate(self, model: str, training: Upload, epochs: int) -> CostEstimate | None:
        """Before a job starts: the validator's tokens × epochs at the model's price."""
        tokens = tokens_per_epoch(training)
        price = await self.price(model) if tokens is not None else None
        if price is None or tokens is None:
            return None
        return estimate(price, tokens, epochs)

    async def for_job(self, job: Job) -> JobCosts | None:
        """The job's estimate and its cost from `trained_tokens`; None with no price."""
        price = await self.price(job.model or "")
        if price is None:
            return None
        upload = None
        if job.training_file:
            try:
                upload = await self.store.upload_of_nebius_file(job.training_file)
            except Exception as error:
                log.warning("no report for %s (%s)", job.training_file, error)
        tokens = tokens_per_epoch(upload)
        guess = estimate(price, tokens, job_epochs(job)) if tokens is not None else None
        cost = job_cost(price, job, guess.tokens if guess else None)
        return JobCosts(guess, cost)

    async def card_text(self, job: Job) -> str | None:
        costs = await self.for_job(job)
        return costs.card_text() if costs else None

    async def summary_text(self, job: Job) -> str | None:
        costs = await self.for_job(job)
        return costs.summary_text() if costs else None

    def form_estimates(self, training: Upload | None) -> list[tuple[str, CostEstimate]]:
        """The estimate of a training file at the default epochs, per price band (the model
        is chosen in the same form); empty without a report or on the local engine."""
        tokens = tokens_per_epoch(training)
        if tokens is None or self.free:
            return []
        try:
            config = resolve_price_config()
        except Exception as error:
            log.warning("no price bands for the form (%s)", error)
            return []
        epochs = Hyperparameters().n_epochs
        edge = f"{LARGE_FROM_B:g}B parameters"
        bands = (
            (f"models under {edge}", config.small_per_m, PUBLISHED_SMALL_PER_M),
            (f"{edge} and more", config.large_per_m, PUBLISHED_LARGE_PER_M),
        )
        return [
            (
                label,
                estimate(
                    TrainingPrice(
                        "", configured if configured is not None else published, "published"
                    ),
                    tokens,
                    epochs,
                ),
            )
            for label, configured, published in bands
        ]


__all__ = ["Costs", "job_epochs", "tokens_per_epoch"]
