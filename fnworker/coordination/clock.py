"""The clock the coordination driver reads the time from and sleeps on: a tiny
Protocol, so a simulation can inject its own, and the system's monotonic clock.
Reads the clock and sleeps; no other I/O."""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic seconds and an async sleep on the same time line."""

    def now(self) -> float:
        """Seconds on a monotonic time line (only differences mean something)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock's time line."""
        ...


class SystemClock:
    """``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep(seconds)``."""
        await anyio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
