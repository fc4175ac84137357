"""Time, behind one seam: production waits for real, tests advance a fake clock instantly.

Every part of the bot that reads or waits on time takes a Clock (the store keeps its own
`now`, wall-clock seconds that must mean something after a restart).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds for measuring intervals (never goes back)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (for what must differ across processes)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when someone sleeps on it (or `advance` is called)."""

    def __init__(self, start: float = 1000.0, *, wall: float = 1_700_000_000.0) -> None:
        self.now = start
        # Wall-clock time at `start`; it moves with the monotonic time.
        self.wall_offset = wall - start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.wall_offset + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)  # still let other tasks run, as a real sleep would
