"""A graceful stop's hand-off, the worker's side of it that does I/O: confirm to the
leader the instances handed over to this worker once the runtime runs them (so
their previous owner stops its copies only then), and the hand-off itself on a
stop signal (docs/coordination.md, "Graceful stop: hand-off").
"""

from __future__ import annotations

import anyio
import structlog

from fnworker.coordination.backend import GracefulHandOff
from fnworker.runtimes.driver import RuntimeDriver
from fnworker.scheduler.model.records import InstanceId

log = structlog.get_logger("fnworker.worker")

CONFIRM_EVERY = 0.05
"""How often a worker looks whether the instances handed over to it run yet (it
looks only at those, so an idle worker's look costs nothing)."""


async def confirm_handed_over(backend: GracefulHandOff, driver: RuntimeDriver) -> None:
    """Forever: tell the leader which handed-over instances run here now."""
    while True:
        awaiting = backend.awaiting_start()
        if awaiting:
            running = [i for i in sorted(awaiting) if is_running(driver, i)]
            if running:
                backend.confirm_running(running)
        await anyio.sleep(CONFIRM_EVERY)


def is_running(driver: RuntimeDriver, instance: InstanceId) -> bool:
    """True when the runtime reports ``instance`` running."""
    status = driver.status(instance)
    return status is not None and status.running


async def hand_off(backend: GracefulHandOff, timeout: float) -> bool:
    """Hand this worker's instances to the others before it stops (at most
    ``timeout`` seconds); logs how it went. True when every instance was."""
    started = anyio.current_time()
    outcome = await backend.hand_off(timeout)
    if outcome is None:
        log.info("graceful stop: no hand-off (alone in the fleet, or its timeout is 0)")
        return False
    seconds = round(anyio.current_time() - started, 3)
    log.info("graceful stop: hand-off ended", complete=outcome, seconds=seconds)
    return outcome
