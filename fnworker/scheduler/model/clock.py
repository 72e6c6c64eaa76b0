"""The clock every timeout, deadline and back-off is read from (runtimes, the
coordination driver, the instance host): a tiny Protocol, so tests and simulations
inject their own, and the system's monotonic clock. The one module of the model that
touches the outside world: it reads the time and sleeps (pyproject's pure-core
contract names it as the exception)."""

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

    # The C function itself, not a wrapper: the instance host reads it per message.
    now = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep(seconds)``."""
        await anyio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
