"""Time, behind one seam: production waits for real, tests advance a fake one instantly
(`tests/bot/fake_clock.py`).

Every part of the bot that reads or waits on time takes a Clock, the store included (it reads
`time()`: wall-clock seconds, which must mean something after a restart and across processes).
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
