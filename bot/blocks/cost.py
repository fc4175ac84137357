"""What training costs, as the card, the summary, the form and the first message say it.

The figures and their words come from `client.cost` (the price rule, "≈ $0.35 (295k tokens ×
3 epochs at $0.40 per million; training tokens only)", "$0.09 so far …", "free on the local
engine"); this module only puts them in the bot's messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from client.cost import FREE_TEXT, CostEstimate, JobCost, format_usd


@dataclass(frozen=True)
class JobCosts:
    """A job's estimate (from its training file's report, when the bot checked that file)
    and its cost so far or in all (from `trained_tokens`)."""

    estimate: CostEstimate | None
    cost: JobCost | None

    @property
    def free(self) -> bool:
        return self.cost is not None and self.cost.price.is_free

    def card_text(self) -> str | None:
        """The card's line: the running (or final) cost, and the estimate beside it while the
        job runs; None when nothing is known (no price, no report)."""
        if self.free:
            return FREE_TEXT
        parts: list[str] = []
        if self.cost is not None:
            parts.append(self.cost.text)
        if self.estimate is not None and not (self.cost is not None and self.cost.final):
            parts.append(f"estimate {self.estimate.text}")
        return "; ".join(parts) or None

    def summary_text(self) -> str | None:
        """The summary's line: what the job cost (the estimate only where nothing else is)."""
        if self.free:
            return FREE_TEXT
        if self.cost is not None:
            return self.cost.text
        return f"estimate {self.estimate.text}" if self.estimate is not None else None


def cost_field(text: str | None) -> list[str]:
    """The card's and the summary's `*Cost:*` line, or none."""
    return [f"*Cost:* {text}"] if text else []


def start_cost_text(estimate: CostEstimate | None) -> str | None:
    """The inline create's first message: the estimate before anything is paid for."""
    if estimate is None:
        return None
    return f"Estimated cost: {estimate.text}"


def form_cost_text(free: bool, estimates: Sequence[tuple[str, CostEstimate]]) -> str | None:
    """The form's context line for the chosen training file: the price depends on the model,
    chosen in the same form, so each price band is shown (`("under 20B", estimate)`)."""
    if free:
        return f":moneybag: Estimated cost: {FREE_TEXT}."
    if not estimates:
        return None
    first = estimates[0][1]
    each = "; ".join(
        f"{band}: ≈ {_usd(e)}" for band, e in estimates if e.price.per_million is not None
    )
    count = f"{first.tokens_per_epoch:,} tokens × {first.epochs} epochs"
    return (
        f":moneybag: Estimated cost of this file at the default epochs ({count}; training "
        f"tokens only): {each}. The start message gives the figure for the model chosen."
    )


def _usd(estimate: CostEstimate) -> str:
    return format_usd(estimate.usd or 0.0)
