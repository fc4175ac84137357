"""What training costs: Nebius's price rule, the estimate before a job starts, and the
running and final cost of a job. Text for people comes from here (the CLI and the bot).

Nebius bills fine-tuning by trained tokens, the job's `trained_tokens`: $0.40 per million for
models under 20B parameters and $2.80 above, as published. The price of a model is, first
match wins:

1. Nebius's own, when `GET /v0/models` lists the model with
   `fine_tune.training_price_per_million_tokens` (`NebiusClient.training_price` asks once
   per client; a 404, an error or an answer without the field falls through);
2. the price set for that exact model id in NEBIUS_TRAINING_PRICES (`model=price,...`);
3. the band of the model's size, read from its id: NEBIUS_PRICE_SMALL_PER_M under 20B
   parameters, NEBIUS_PRICE_LARGE_PER_M at 20B and above, the published figures where those
   are not set;
4. otherwise unknown, said as such: an id that names no size (`deepseek-ai/DeepSeek-V3`)
   gets no guessed price, and the text says how to set one.

On the local engine (a loopback base URL) training is free, and the text says so.

Sizes from ids: the first `<number>B` (or `<number>M`, millions) that stands alone between
separators: `Llama-3.1-8B-Instruct` 8B, `gpt-oss-20b` 20B, `Qwen3-0.6B` 0.6B,
`SmolLM2-135M` 0.135B. A mixture of experts counts its total parameters, the size the model
is sold by: `Qwen3-235B-A22B` is 235B (the active count `A22B` is not a size of its own) and
`Mixtral-8x7B` is 56B; where Nebius bands an MoE by its active parameters instead, its API
price or NEBIUS_TRAINING_PRICES corrects it, and the higher band never under-estimates.
"Under 20B" is the small band, so 20B itself is large.

Estimates count training tokens only: Nebius bills trained tokens, so the validation file's
tokens are not added. The estimate is the validator's token count (about four characters a
token, see client.validation.stats) times the epochs.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from client.config import PRICE_LARGE_VAR, PRICE_SMALL_VAR, PRICES_VAR, PriceConfig
from client.deployments import inference_base
from client.models import Job

if TYPE_CHECKING:
    from client.validation import ValidationReport

# Nebius's published training prices, USD per million trained tokens.
PUBLISHED_SMALL_PER_M = 0.40
PUBLISHED_LARGE_PER_M = 2.80
# Models of this many billion parameters or more are in the large band ("under 20B" is small).
LARGE_FROM_B = 20.0
TOKENS_PER_PRICE_UNIT = 1_000_000

FREE_TEXT = "free on the local engine"
TRAINING_ONLY = "training tokens only"

PriceSource = Literal["api", "configured", "published", "local", "unknown"]

# A size stands alone: not after a letter, digit or "." (so `A22B`, an MoE's active count,
# and version numbers are not sizes), and not followed by a letter or digit.
_SIZE = re.compile(
    r"(?<![A-Za-z0-9.])(?:(?P<experts>\d+)x)?(?P<number>\d+(?:\.\d+)?)(?P<unit>[BbMm])(?![A-Za-z0-9])"
)


def model_size_b(model: str) -> float | None:
    """Billions of parameters named in a model id (see the module's notes), or None."""
    name = model.rsplit("/", 1)[-1]
    found = _SIZE.search(name)
    if not found:
        return None
    size = float(found["number"]) * (int(found["experts"]) if found["experts"] else 1)
    return size / 1000 if found["unit"] in "Mm" else size


def _size_text(size_b: float) -> str:
    return f"{size_b:g}B"


@dataclass(frozen=True)
class TrainingPrice:
    """The price of training one model, and where it comes from."""

    model: str
    per_million: float | None  # USD per million trained tokens; None: unknown
    source: PriceSource
    # Where it comes from, in words ("published price for models under 20B parameters").
    basis: str = ""
    size_b: float | None = None

    @property
    def is_free(self) -> bool:
        return self.source == "local"

    def cost(self, tokens: float) -> float | None:
        if self.per_million is None:
            return None
        return tokens * self.per_million / TOKENS_PER_PRICE_UNIT

    @property
    def text(self) -> str:
        """`$0.40 per million trained tokens (published price for models under 20B ...)`."""
        if self.is_free:
            return FREE_TEXT
        if self.per_million is None:
            return f"price unknown: {self.basis}"
        return f"{format_price(self.per_million)} per million trained tokens ({self.basis})"


def free_price(model: str) -> TrainingPrice:
    return TrainingPrice(model, 0.0, "local", "the local engine", model_size_b(model))


def price_for(
    model: str, config: PriceConfig | None = None, api_price: float | None = None
) -> TrainingPrice:
    """The rule of the module's notes, steps 1 to 4 (the API's price is looked up by
    `NebiusClient.training_price` and passed in)."""
    config = config or PriceConfig()
    size = model_size_b(model)
    if api_price is not None:
        return TrainingPrice(model, api_price, "api", "Nebius's price for this model", size)
    if model in config.per_model:
        return TrainingPrice(
            model, config.per_model[model], "configured", f"set in {PRICES_VAR}", size
        )
    if size is None:
        reason = f"the id {model!r} names no model size" if model else "no model given"
        return TrainingPrice(
            model,
            None,
            "unknown",
            f"{reason}; set a price with {PRICES_VAR}='{model or 'MODEL'}=PRICE' "
            "(USD per million tokens)",
        )
    large = size >= LARGE_FROM_B
    configured = config.large_per_m if large else config.small_per_m
    edge = f"{LARGE_FROM_B:g}B parameters"
    band = f"models of {edge} and more" if large else f"models under {edge}"
    band += f"; this one is {_size_text(size)}"
    if configured is not None:
        var = PRICE_LARGE_VAR if large else PRICE_SMALL_VAR
        return TrainingPrice(model, configured, "configured", f"{var}, for {band}", size)
    published = PUBLISHED_LARGE_PER_M if large else PUBLISHED_SMALL_PER_M
    return TrainingPrice(model, published, "published", f"published price for {band}", size)


def _price_value(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip().removeprefix("$").strip()
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return price if math.isfinite(price) and price >= 0 else None


def api_price_in(listing: Any, model: str) -> float | None:
    """`fine_tune.training_price_per_million_tokens` of `model` in a `GET /v0/models` answer
    (a bare array, or `{"data": [...]}`), by its id or its inference id; None when the answer
    does not list the model or gives no usable price."""
    if isinstance(listing, dict):
        listing = listing.get("data")
    if not isinstance(listing, list) or not model:
        return None
    wanted = [model, inference_base(model)]
    by_name: dict[str, float] = {}
    for item in listing:
        if not isinstance(item, dict):
            continue
        name = item.get("name") or item.get("id")
        fine_tune = item.get("fine_tune")
        if not isinstance(name, str) or not isinstance(fine_tune, dict):
            continue
        price = _price_value(fine_tune.get("training_price_per_million_tokens"))
        if price is not None:
            by_name.setdefault(name, price)
    for candidate in wanted:
        if candidate in by_name:
            return by_name[candidate]
    folded = {name.lower(): price for name, price in by_name.items()}
    for candidate in wanted:
        if candidate.lower() in folded:
            return folded[candidate.lower()]
    return None


@dataclass
class PriceCache:
    """What one client learnt about prices: the configured overrides and the API's
    `/v0/models` answer (None after an answer that could not give prices)."""

    config: PriceConfig
    listing: Any = None
    loaded: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# ---------------------------------------------------------------------- formatting


def format_usd(amount: float) -> str:
    """`$0.35`, `$1,234.50`; amounts under a cent with two significant digits (`$0.0048`)."""
    if amount <= 0:
        return "$0.00"
    if amount >= 0.01:
        return f"${amount:,.2f}"
    if amount < 0.0001:
        return "< $0.0001"
    decimals = 1 - math.floor(math.log10(amount))
    return f"${amount:.{decimals}f}"


def format_price(per_million: float) -> str:
    """`$0.40`, `$2.80`; a price with finer cents as given (`$0.125`)."""
    if abs(per_million * 100 - round(per_million * 100)) < 1e-9:
        return f"${per_million:,.2f}"
    return f"${per_million:g}"


def short_tokens(count: int) -> str:
    """`950`, `9.5k`, `295k`, `1.2M`, `48M`: the size of an estimate at a glance."""
    if count < 1000:
        return str(count)
    shown = str(count)
    for unit, size in (("k", 1e3), ("M", 1e6), ("B", 1e9)):
        value = count / size
        text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
        shown = text.removesuffix(".0") + unit
        if float(text) < 1000:
            break  # 999,600 is "1M", not "1000k"
    return shown


def _epochs(epochs: int) -> str:
    return f"{epochs} epoch" if epochs == 1 else f"{epochs} epochs"


# ---------------------------------------------------------------------- before a job starts


@dataclass(frozen=True)
class CostEstimate:
    """The validator's token count × epochs, at one price."""

    price: TrainingPrice
    tokens_per_epoch: int
    epochs: int

    @property
    def tokens(self) -> int:
        return self.tokens_per_epoch * self.epochs

    @property
    def usd(self) -> float | None:
        return self.price.cost(self.tokens)

    @property
    def text(self) -> str:
        """`≈ $0.35 (295k tokens × 3 epochs at $0.40 per million; training tokens only)`."""
        if self.price.is_free:
            return FREE_TEXT
        count = f"{short_tokens(self.tokens_per_epoch)} tokens × {_epochs(self.epochs)}"
        if self.price.per_million is None:
            return f"≈ {short_tokens(self.tokens)} trained tokens ({count}); {self.price.text}"
        usd = self.usd or 0.0
        return (
            f"≈ {format_usd(usd)} ({count} at {format_price(self.price.per_million)} "
            f"per million; {TRAINING_ONLY})"
        )


def estimate(price: TrainingPrice, tokens_per_epoch: int, epochs: int) -> CostEstimate:
    return CostEstimate(price, max(0, tokens_per_epoch), max(1, epochs))


def estimate_from_report(
    price: TrainingPrice, report: ValidationReport, epochs: int
) -> CostEstimate | None:
    """The estimate for a job trained on the file `report` checked; None when the report is
    of a validation file alone (its tokens are not trained on, so not billed)."""
    if report.role != "training":
        return None
    return estimate(price, report.stats.tokens.total, epochs)


# ---------------------------------------------------------------------- a job's cost


@dataclass(frozen=True)
class JobCost:
    """A job's cost so far (running) or in all (finished), and how it was found."""

    price: TrainingPrice
    usd: float | None  # None: not known
    trained_tokens: int | None
    final: bool  # the job has ended: this is what it cost
    extrapolated: bool  # from the estimate and the steps done, not from trained_tokens
    text: str


def job_cost(price: TrainingPrice, job: Job, estimated_tokens: int | None = None) -> JobCost:
    """The cost of `job` from its `trained_tokens`. While a job runs without reporting
    them, the estimate (`estimated_tokens`, the whole job's: CostEstimate.tokens) scaled by
    trained_steps / total_steps stands in, marked with ≈; a job that ended without them
    shows the estimate scaled the same way, or says the cost was not reported."""
    final = job.is_terminal
    tokens = job.trained_tokens

    def made(usd: float | None, text: str, extrapolated: bool = False) -> JobCost:
        return JobCost(price, usd, tokens, final, extrapolated, text)

    if price.is_free:
        return made(0.0, FREE_TEXT)
    unknown = price.per_million is None
    progress = job.progress
    if tokens is not None:
        usd = price.cost(tokens)
        counted = f"{tokens:,} trained tokens"
        if unknown:
            return made(None, f"{counted}; {price.text}")
        if final:
            return made(usd, f"{format_usd(usd or 0.0)} ({counted})")
        text = f"{format_usd(usd or 0.0)} so far ({counted}"
        if usd and progress and 0 < progress < 1:
            # Tokens per step are about even (packed batches), so the rate carries on.
            text += f"; ≈ {format_usd(usd / progress)} in all at this rate"
        return made(usd, text + ")")
    expected = price.cost(estimated_tokens) if estimated_tokens is not None else None
    if expected is not None and progress is not None and (final or progress > 0):
        steps = f"step {job.trained_steps} of {job.total_steps}"
        usd = expected * progress
        if final:
            text = f"≈ {format_usd(usd)} (estimated at {steps}: the job reported no trained tokens)"
        else:
            text = f"≈ {format_usd(usd)} so far ({steps}, of ≈ {format_usd(expected)})"
        return made(usd, text, extrapolated=True)
    if final:
        return made(None, "not reported: the job gives no trained tokens")
    if not job.trained_steps:
        text = "nothing trained yet"
        if expected is not None:
            text += f" (≈ {format_usd(expected)} expected)"
        return made(0.0, text)
    return made(None, "not known yet: the job reports no trained tokens")
