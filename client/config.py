"""Client settings from the environment."""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from client.constants import DEFAULT_BASE_URL
from client.errors import ConfigError

API_KEY_VAR = "NEBIUS_API_KEY"
BASE_URL_VAR = "NEBIUS_BASE_URL"

MISSING_KEY_MESSAGE = (
    f"{API_KEY_VAR} is not set. Create a key in the Nebius Token Factory console "
    f"(API keys), then run `export {API_KEY_VAR}=<your key>` "
    f"(and `export {BASE_URL_VAR}=<url>` to use another server, e.g. the local engine)."
)


@dataclass(frozen=True)
class Settings:
    api_key: str
    base_url: str = DEFAULT_BASE_URL

    def __repr__(self) -> str:  # never print the key
        return f"Settings(api_key='***', base_url={self.base_url!r})"


def normalize_base_url(url: str) -> str:
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{BASE_URL_VAR} must start with http:// or https:// (got {url!r})")
    # A trailing slash makes relative paths join under /v1/ rather than replace it.
    return url if url.endswith("/") else url + "/"


def resolve_settings(api_key: str | None = None, base_url: str | None = None) -> Settings:
    """Explicit values win; otherwise the environment; a missing key is an error."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_VAR, "")
    key = key.strip()
    if not key:
        raise ConfigError(MISSING_KEY_MESSAGE)
    url = base_url or os.environ.get(BASE_URL_VAR, "").strip() or DEFAULT_BASE_URL
    return Settings(api_key=key, base_url=normalize_base_url(url))


# ---------------------------------------------------------------------- training prices
# Overrides of Nebius's training prices (client.cost holds the published figures and the rule
# that picks a price). Read when a price is first needed, so that a typo here fails the
# commands that show a cost, with the variable named, and nothing else.
PRICE_SMALL_VAR = "NEBIUS_PRICE_SMALL_PER_M"
PRICE_LARGE_VAR = "NEBIUS_PRICE_LARGE_PER_M"
PRICES_VAR = "NEBIUS_TRAINING_PRICES"


@dataclass(frozen=True)
class PriceConfig:
    """USD per million trained tokens as configured; None where nothing is set."""

    small_per_m: float | None = None
    large_per_m: float | None = None
    # Exact model id -> price, for one model (e.g. one whose size its id does not tell).
    per_model: Mapping[str, float] = field(default_factory=dict)


def _price(text: str, where: str) -> float:
    value = text.strip().removeprefix("$").strip()
    try:
        price = float(value)
    except ValueError:
        raise ConfigError(
            f"{where}: {text.strip()!r} is not a price (USD per million tokens, e.g. 0.40)"
        ) from None
    if not math.isfinite(price) or price < 0:
        raise ConfigError(f"{where}: a price must be a number of at least 0 (got {text.strip()!r})")
    return price


def parse_price_map(text: str) -> dict[str, float]:
    """`model=price,model=price` (spaces allowed around each part; empty entries skipped)."""
    prices: dict[str, float] = {}
    for number, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        model, sep, value = entry.partition("=")
        where = f"{PRICES_VAR}, entry {number}"
        if not sep or not model.strip():
            raise ConfigError(
                f"{where}: {entry.strip()!r} is not model=price "
                f"(e.g. {PRICES_VAR}='meta-llama/Llama-3.1-8B-Instruct=0.40')"
            )
        # rpartition would also do, but a model id never holds "=": say so if one seems to.
        if "=" in value:
            raise ConfigError(f"{where}: {entry.strip()!r} has more than one '='")
        prices[model.strip()] = _price(value, f"{where} ({model.strip()})")
    return prices


def resolve_price_config(environ: Mapping[str, str] | None = None) -> PriceConfig:
    """The price overrides in the environment; a malformed value raises ConfigError."""
    env = os.environ if environ is None else environ

    def optional(var: str) -> float | None:
        text = env.get(var, "").strip()
        return _price(text, var) if text else None

    return PriceConfig(
        small_per_m=optional(PRICE_SMALL_VAR),
        large_per_m=optional(PRICE_LARGE_VAR),
        per_model=parse_price_map(env.get(PRICES_VAR, "")),
    )
