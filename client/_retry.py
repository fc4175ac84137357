"""Backoff with jitter, and which failures are worth another try."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from client.constants import (
    JITTER_FRACTION,
    RETRY_AFTER_CAP_S,
    RETRY_BASE_DELAY_S,
    RETRY_MAX_DELAY_S,
)

if TYPE_CHECKING:  # only annotated here; the engine imports this module without httpx
    import httpx

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def jittered(delay: float, rng: random.Random, fraction: float = JITTER_FRACTION) -> float:
    """delay +/- fraction, so that many clients do not poll in lockstep."""
    return max(0.0, delay * (1 + rng.uniform(-fraction, fraction)))


def backoff(initial: float, factor: float, cap: float) -> Iterator[float]:
    """The waits between polls before jitter: `initial`, then `factor` times more each time,
    never above `cap`."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, cap)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = when - (time.time() if now is None else now)
    return min(max(0.0, seconds), RETRY_AFTER_CAP_S)


@dataclass
class RetryPolicy:
    max_retries: int
    rng: random.Random = field(default_factory=random.Random)
    base_delay: float = RETRY_BASE_DELAY_S
    max_delay: float = RETRY_MAX_DELAY_S

    def delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Wait before retry number `attempt` (0-based); Retry-After wins when given."""
        if response is not None:
            after = parse_retry_after(response.headers.get("retry-after"))
            if after is not None:
                return after
        return jittered(min(self.max_delay, self.base_delay * 2**attempt), self.rng)
