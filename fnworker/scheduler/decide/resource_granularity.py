"""``functionInstanceResourceGranularities`` and ``functionInstanceResourceChangeInLockStep``:
an instance's cpu and ram must be positive multiples of the configured steps, and with
lock step the same multiple of both, as Pulsar's KubernetesRuntimeFactory admits
functions (cpu compared in whole millicores, so 0.3 is a multiple of 0.1). Pure."""

from __future__ import annotations

import math

import msgspec

from fnworker.scheduler.model.records import FunctionConfig, Resources

FIELD = "functionInstanceResourceGranularities"


class Granularities(msgspec.Struct, frozen=True, kw_only=True):
    """The configured steps (None: that part is free) and whether they move in lock step."""

    cpu: float | None = None
    ram: int | None = None
    lock_step: bool = False


def millicores(cpu: float) -> int:
    """Cores as whole millicores, rounded half up as Java's Math.round does."""
    return math.floor(cpu * 1000 + 0.5)


def granularity_problem(config: FunctionConfig, steps: Granularities) -> str | None:
    """One sentence when the config's cpu or ram breaks a step, else None."""
    resources = config.resources or Resources()
    cpu_multiple = 0
    step_millis = millicores(steps.cpu) if steps.cpu is not None else 0
    if step_millis > 0:
        cpu_millis = millicores(resources.cpu)
        if cpu_millis <= 0 or cpu_millis % step_millis:
            return (
                f"resources.cpu {resources.cpu} is not a multiple of {FIELD}.cpu {steps.cpu}; "
                f"expected a positive multiple such as {_times(steps.cpu, 1)} or "
                f"{_times(steps.cpu, 2)}"
            )
        cpu_multiple = cpu_millis // step_millis
    if steps.ram is not None and steps.ram > 0:
        if resources.ram <= 0 or resources.ram % steps.ram:
            return (
                f"resources.ram {resources.ram} is not a multiple of {FIELD}.ram {steps.ram}; "
                f"expected a positive multiple such as {steps.ram} or {2 * steps.ram}"
            )
        ram_multiple = resources.ram // steps.ram
        if steps.lock_step and cpu_multiple and cpu_multiple != ram_multiple:
            return (
                f"resources.cpu {resources.cpu} and resources.ram {resources.ram} are "
                f"{cpu_multiple} and {ram_multiple} times {FIELD} (cpu {steps.cpu}, ram "
                f"{steps.ram}), but functionInstanceResourceChangeInLockStep is true; expected "
                f"the same multiple, e.g. cpu {_times(steps.cpu, cpu_multiple)} with ram "
                f"{cpu_multiple * steps.ram}"
            )
    return None


def _times(step: float | None, count: int) -> float:
    """``count`` steps of cpu, in whole millicores (no 0.30000000000000004)."""
    assert step is not None
    return millicores(step) * count / 1000
