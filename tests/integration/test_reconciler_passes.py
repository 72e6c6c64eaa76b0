"""The worker's reconciler carries out one pass's actions side by side (bounded), on
the real thread runtime and broker: every instance starts exactly once, an instance
slow or failing to start holds up no other, and a change that arrives during a pass
is carried out by the next one (an instance unassigned while it starts ends
stopped)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import anyio
import pytest
from anyio.from_thread import BlockingPortal

from fnworker.coordination.memory import MemoryCluster, MemoryCoordination
from fnworker.coordination.wire import FunctionWrite
from fnworker.runtimes.thread import ThreadRuntime
from fnworker.scheduler.admin.leader_control import Wakeup
from fnworker.scheduler.decide.reconcile import ReplaceInstance, StartInstance, StopInstance
from fnworker.scheduler.model.instances import InstanceSpec
from fnworker.scheduler.model.records import Assignment, InstanceId, WorkerId
from fnworker.scheduler.worker.worker_loops import LocalAssignments, Reconciler
from tests.integration.conftest import EXAMPLES, SpecMaker, wait_until

EXCLAMATION = EXAMPLES / "exclamation_function.py"
EXCLAMATION_CLASS = "exclamation_function.ExclamationFunction"
COUNT = 24


class Specs:
    """The spec of each instance, handed to the reconciler as its ``make_spec``; counts
    the starts asked for, and holds back the instances in ``held`` until ``released``."""

    def __init__(self, specs: list[InstanceSpec]) -> None:
        self.by_instance = {spec.instance: spec for spec in specs}
        self.asked: Counter[InstanceId] = Counter()
        self.held: set[InstanceId] = set()
        self.released = False
        self.failing: set[InstanceId] = set()

    async def __call__(self, action: StartInstance | ReplaceInstance, _: Path) -> InstanceSpec:
        self.asked[action.instance] += 1
        if action.instance in self.failing:
            raise ValueError("no package for this instance")
        if action.instance in self.held:
            with anyio.fail_after(20):
                while not self.released:
                    await anyio.sleep(0.01)
        return self.by_instance[action.instance]


def exclamations(make_spec: SpecMaker, name: str, count: int = COUNT) -> list[InstanceSpec]:
    """``count`` exclamation functions of parallelism 1."""
    return [
        make_spec(
            f"{name}{i}",
            EXCLAMATION,
            class_name=EXCLAMATION_CLASS,
            inputs=[f"{name}{i}-in"],
            output=f"{name}{i}-out",
        )
        for i in range(count)
    ]


def reconciler_for(runtime: ThreadRuntime, specs: Specs, tmp_path: Path) -> Reconciler:
    """A reconciler on the real runtime with an in-memory coordination backend."""
    backend = MemoryCoordination(MemoryCluster())
    return Reconciler(backend, runtime, LocalAssignments(), specs, tmp_path / "instances")


def starts(specs: list[InstanceSpec]) -> list[StartInstance | ReplaceInstance | StopInstance]:
    return [StartInstance(instance=s.instance, function=s.function) for s in specs]


def running(runtime: ThreadRuntime, instances: list[InstanceId]) -> bool:
    return all((status := runtime.status(i)) is not None and status.running for i in instances)


@pytest.mark.timeout(90)
def test_a_pass_starts_every_instance_once_and_a_slow_start_holds_up_none(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
) -> None:
    made = exclamations(make_spec, unique_name)
    specs = Specs(made)
    slow = made[0].instance
    specs.held = {slow}  # held until every other instance runs: one at a time never gets there
    others = [s.instance for s in made[1:]]
    reconciler = reconciler_for(runtime, specs, tmp_path)

    async def pass_with_release() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(reconciler.apply_all, starts(made))
            with anyio.fail_after(30):
                while not running(runtime, others):
                    await anyio.sleep(0.02)
            specs.released = True

    portal.call(pass_with_release)

    everyone = [s.instance for s in made]
    assert wait_until(lambda: running(runtime, everyone))
    assert specs.asked == Counter(everyone)  # one start asked for each, none twice
    assert runtime.instances() == set(everyone)
    assert reconciler.running == {i: 1 for i in everyone}


@pytest.mark.timeout(90)
def test_a_failing_start_holds_up_none_of_the_others(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
) -> None:
    made = exclamations(make_spec, unique_name, 8)
    bad = make_spec(
        f"{unique_name}bad",
        EXCLAMATION,
        class_name="exclamation_function.Nope",
        inputs=[f"{unique_name}bad-in"],
    )
    specs = Specs([*made, bad])
    unbuildable = made[0].instance
    specs.failing = {unbuildable}
    reconciler = reconciler_for(runtime, specs, tmp_path)

    portal.call(reconciler.apply_all, [*starts([bad]), *starts(made)])

    fine = [s.instance for s in made[1:]]
    assert wait_until(lambda: running(runtime, fine))
    status = runtime.status(bad.instance)
    assert status is not None and not status.running and "'Nope'" in status.error
    assert runtime.status(unbuildable) is None and unbuildable not in reconciler.running
    assert set(reconciler.running) == {*fine, bad.instance}


@pytest.mark.timeout(90)
def test_an_instance_unassigned_while_it_starts_ends_stopped(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
) -> None:
    made = exclamations(make_spec, unique_name, 4)
    specs = Specs(made)
    late = made[0].instance
    specs.held = {late}
    reconciler = reconciler_for(runtime, specs, tmp_path)
    backend = reconciler.backend
    assert isinstance(backend, MemoryCoordination)
    for spec in made:
        record = spec.function
        backend.metadata.apply(
            FunctionWrite(
                fqfn=record.fqfn, version=1, record=record, writer="test", request_id=spec.instance
            )
        )
        reconciler.mine.by_instance[spec.instance] = Assignment(
            instance=spec.instance, worker=WorkerId("worker-1"), term=1, version=1
        )
    others = [s.instance for s in made[1:]]

    async def unassign_during_the_pass() -> None:
        wakeup = Wakeup()
        async with anyio.create_task_group() as group:
            group.start_soon(reconciler.run, wakeup)
            wakeup.set()
            with anyio.fail_after(30):
                while not running(runtime, others):
                    await anyio.sleep(0.02)
            assert specs.asked[late] == 1  # its start is under way, held back
            del reconciler.mine.by_instance[late]
            wakeup.set()  # the change arrives during the pass
            specs.released = True
            deadline = time.monotonic() + 30
            while late in runtime.instances() or late in reconciler.running:
                assert time.monotonic() < deadline, "the unassigned instance still runs"
                await anyio.sleep(0.02)
            group.cancel_scope.cancel()

    portal.call(unassign_during_the_pass)

    assert running(runtime, others)
    assert set(reconciler.running) == set(others)
