"""functionInstanceResourceGranularities and ...ChangeInLockStep at submission, on the
cases Pulsar's KubernetesRuntimeFactoryTest checks (cpu granularity 0.1, ram 1000)."""

from __future__ import annotations

import pytest

from fnworker.scheduler.decide.admission_limits import limit_problem, limits_of
from fnworker.scheduler.decide.resource_granularity import Granularities, granularity_problem
from fnworker.scheduler.model.records import FunctionConfig, Resources
from fnworker.scheduler.settings.worker_config import ResourceBounds, WorkerConfig

STEPS = Granularities(cpu=0.1, ram=1000)
LOCKED = Granularities(cpu=0.1, ram=1000, lock_step=True)


def config(cpu: float, ram: int) -> FunctionConfig:
    return FunctionConfig(name="f", resources=Resources(cpu=cpu, ram=ram))


@pytest.mark.parametrize(
    ("cpu", "ram", "steps"),
    [
        (0.05, 100, Granularities()),
        (0.1, 1000, STEPS),
        (1.0, 1000, STEPS),
        (5.0, 1000, STEPS),
        (0.3, 1000, STEPS),
        (0.2, 1000, STEPS),
        (0.1, 2000, STEPS),
        (0.1, 1000, LOCKED),
        (0.2, 2000, LOCKED),
        (1.0, 10000, LOCKED),
        (10.0, 100000, LOCKED),
    ],
)
def test_multiples_are_admitted(cpu: float, ram: int, steps: Granularities) -> None:
    assert granularity_problem(config(cpu, ram), steps) is None


@pytest.mark.parametrize(
    ("cpu", "ram", "steps", "sentence"),
    [
        (0.05, 1000, STEPS, "resources.cpu 0.05 is not a multiple of "
         "functionInstanceResourceGranularities.cpu 0.1; expected a positive multiple such "
         "as 0.1 or 0.2"),
        (0.1, 100, STEPS, "resources.ram 100 is not a multiple of "
         "functionInstanceResourceGranularities.ram 1000; expected a positive multiple such "
         "as 1000 or 2000"),
        (1.01, 1000, STEPS, "resources.cpu 1.01 is not"),
        (0.999, 1000, STEPS, "resources.cpu 0.999 is not"),
        (1.001, 1000, STEPS, "resources.cpu 1.001 is not"),
        (0.1, 2000, LOCKED, "resources.cpu 0.1 and resources.ram 2000 are 1 and 2 times "
         "functionInstanceResourceGranularities (cpu 0.1, ram 1000), but "
         "functionInstanceResourceChangeInLockStep is true; expected the same multiple, "
         "e.g. cpu 0.1 with ram 1000"),
        (0.2, 1000, LOCKED, "resources.cpu 0.2 and resources.ram 1000 are 2 and 1 times"),
    ],
)  # fmt: skip
def test_other_values_are_one_sentence(
    cpu: float, ram: int, steps: Granularities, sentence: str
) -> None:
    problem = granularity_problem(config(cpu, ram), steps)
    assert problem is not None and problem.startswith(sentence), problem


def test_the_worker_config_keys_reach_the_admission_check() -> None:
    worker = WorkerConfig(
        function_instance_resource_granularities=ResourceBounds(cpu=0.5, ram=512 * 1024**2),
        function_instance_resource_change_in_lock_step=True,
    )
    limits = limits_of(worker)
    assert limit_problem(config(1.0, 1024**3), limits) is None  # Pulsar's defaults: 2 and 2
    problem = limit_problem(config(0.5, 1024**3), limits)
    assert problem is not None and "functionInstanceResourceChangeInLockStep" in problem
    assert limit_problem(config(0.5, 512 * 1024**2), limits) is None
