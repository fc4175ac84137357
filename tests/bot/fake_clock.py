"""A clock for tests: it moves only when someone sleeps on it (or `advance` is called), so a
test of a 10-minute wait takes no time. It implements `bot.clock.Clock`."""

from __future__ import annotations

import asyncio


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
