"""The worker's reconciler carries out its actions side by side (bounded), on the
real thread runtime and broker, with an in-memory coordination backend: every
instance starts exactly once, an instance slow or failing to start holds up no
other, an assignment that arrives while others start does not wait for them, and a
change for an instance whose action is under way is carried out when it ends (an
instance unassigned while it starts ends stopped)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from anyio.from_thread import BlockingPortal

from fnworker.coordination.memory import MemoryCluster, MemoryCoordination
from fnworker.coordination.wire import FunctionWrite
from fnworker.runtimes.thread import ThreadRuntime
from fnworker.scheduler.admin.leader_control import Wakeup
from fnworker.scheduler.decide.reconcile import ReplaceInstance, StartInstance
from fnworker.scheduler.model.instances import InstanceSpec
from fnworker.scheduler.model.records import Assignment, InstanceId, WorkerId
from fnworker.scheduler.worker.worker_loops import LocalAssignments, Reconciler
from tests.integration.conftest import EXAMPLES, SpecMaker

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
    """A reconciler on the real runtime with an in-memory coordination backend that
    knows every function of ``specs``."""
    backend = MemoryCoordination(MemoryCluster())
    for spec in specs.by_instance.values():
        record = spec.function
        write = FunctionWrite(
            fqfn=record.fqfn, version=1, record=record, writer="test", request_id=spec.instance
        )
        backend.metadata.apply(write)
    return Reconciler(backend, runtime, LocalAssignments(), specs, tmp_path / "instances")


def assign(reconciler: Reconciler, specs: list[InstanceSpec]) -> None:
    """Make ``specs`` this worker's assignments (as an assignment record would)."""
    for spec in specs:
        reconciler.mine.by_instance[spec.instance] = Assignment(
            instance=spec.instance, worker=WorkerId("worker-1"), term=1, version=1
        )


def running(runtime: ThreadRuntime, instances: list[InstanceId]) -> bool:
    return all((status := runtime.status(i)) is not None and status.running for i in instances)


async def until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Poll ``check`` every 20 ms until it holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await anyio.sleep(0.02)


def run_reconciler(
    portal: BlockingPortal, reconciler: Reconciler, script: Callable[[Wakeup], Awaitable[None]]
) -> None:
    """Run the reconciler's loop while ``script`` drives it, then stop it."""

    async def main() -> None:
        wakeup = Wakeup()
        async with anyio.create_task_group() as group:
            group.start_soon(reconciler.run, wakeup)
            await script(wakeup)
            group.cancel_scope.cancel()

    portal.call(main)


@pytest.mark.timeout(90)
def test_every_instance_starts_once_and_a_slow_start_holds_up_none(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
) -> None:
    made = exclamations(make_spec, unique_name)
    specs = Specs(made)
    specs.held = {made[0].instance}  # held until every other one runs: in turn, never
    others = [s.instance for s in made[1:]]
    everyone = [s.instance for s in made]
    reconciler = reconciler_for(runtime, specs, tmp_path)

    async def script(wakeup: Wakeup) -> None:
        assign(reconciler, made)
        wakeup.set()
        await until(lambda: running(runtime, others), "the others run")
        specs.released = True
        await until(lambda: running(runtime, everyone), "all run")
        await until(lambda: not reconciler.under_way, "no action under way")

    run_reconciler(portal, reconciler, script)

    assert specs.asked == Counter(everyone)  # one start asked for each, none twice
    assert runtime.instances() == set(everyone)
    assert reconciler.running == dict.fromkeys(everyone, 1)


@pytest.mark.timeout(90)
def test_an_assignment_arriving_meanwhile_starts_without_waiting(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
) -> None:
    made = exclamations(make_spec, unique_name, 6)
    specs = Specs(made)
    slow, first, later = made[0], made[1:3], made[3:]
    specs.held = {slow.instance}
    reconciler = reconciler_for(runtime, specs, tmp_path)

    async def script(wakeup: Wakeup) -> None:
        assign(reconciler, [slow, *first])
        wakeup.set()
        await until(lambda: running(runtime, [s.instance for s in first]), "the first run")
        assign(reconciler, later)  # a later record, while the slow start is under way
        wakeup.set()
        await until(lambda: running(runtime, [s.instance for s in later]), "the later ones run")
        assert specs.asked[slow.instance] == 1 and not running(runtime, [slow.instance])
        specs.released = True
        await until(lambda: running(runtime, [slow.instance]), "the slow one runs")

    run_reconciler(portal, reconciler, script)

    assert specs.asked == Counter(s.instance for s in made)


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
    specs = Specs([bad, *made])
    unbuildable = made[0].instance
    specs.failing = {unbuildable}
    fine = [s.instance for s in made[1:]]
    reconciler = reconciler_for(runtime, specs, tmp_path)

    async def script(wakeup: Wakeup) -> None:
        assign(reconciler, [bad, *made])
        wakeup.set()
        await until(lambda: running(runtime, fine), "the fine ones run")
        await until(lambda: not reconciler.under_way, "no action under way")

    run_reconciler(portal, reconciler, script)

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
    others = [s.instance for s in made[1:]]
    reconciler = reconciler_for(runtime, specs, tmp_path)

    async def script(wakeup: Wakeup) -> None:
        assign(reconciler, made)
        wakeup.set()
        await until(lambda: running(runtime, others), "the others run")
        assert specs.asked[late] == 1  # its start is under way, held back
        del reconciler.mine.by_instance[late]
        wakeup.set()  # the change arrives while its start is under way
        specs.released = True
        await until(
            lambda: late not in runtime.instances() and late not in reconciler.running,
            "the unassigned instance stopped",
        )

    run_reconciler(portal, reconciler, script)

    assert running(runtime, others)
    assert set(reconciler.running) == set(others)
