"""The in-process coordination backend runs the real fleet protocol over in-memory
topics: election, a new term when the leader leaves, fenced stale writes, moves
told to both workers, versioned metadata. Short timings; every wait has a deadline."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from anyio.abc import ObjectReceiveStream, TaskGroup

from fnworker.coordination.backend import (
    AssignmentsChanged,
    CoordinationEvent,
    FunctionsChanged,
    VersionConflict,
)
from fnworker.coordination.memory import MemoryCluster, MemoryCoordination
from fnworker.coordination.protocol import Timings
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    InstanceId,
    WorkerId,
    WorkerInfo,
)

pytestmark = pytest.mark.anyio

FAST = Timings(
    heartbeat_interval=0.05,
    dead_timeout=0.5,
    lease_renew=0.05,
    lease_timeout=0.2,
    claim_stagger=0.02,
    report_wait=0.1,
)
F0 = InstanceId("public/default/f:0")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def info(name: str) -> WorkerInfo:
    return WorkerInfo(worker_id=WorkerId(name), worker_hostname="localhost", port=1)


class Member:
    """One running worker's backend, its events, and the scope that stops it."""

    def __init__(self, backend: MemoryCoordination, events: ObjectReceiveStream[CoordinationEvent]):
        self.backend = backend
        self.events = events
        self.scope = anyio.CancelScope()
        self.seen: list[CoordinationEvent] = []

    def drain(self) -> list[CoordinationEvent]:
        while True:
            try:
                self.seen.append(self.events.receive_nowait())  # type: ignore[attr-defined]
            except (anyio.WouldBlock, anyio.EndOfStream):
                return self.seen


async def join(group: TaskGroup, cluster: MemoryCluster, name: str) -> Member:
    backend = MemoryCoordination(cluster)

    async def run(*, task_status: anyio.abc.TaskStatus[Member]) -> None:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as inner:
                member = Member(backend, await inner.start(backend.run, info(name)))
                member.scope = scope
                task_status.started(member)

    member: Member = await group.start(run)
    return member


async def until(check: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.01)


@asynccontextmanager
async def fleet() -> AsyncIterator[tuple[TaskGroup, MemoryCluster]]:
    async with anyio.create_task_group() as group:
        yield group, MemoryCluster(timings=FAST)
        group.cancel_scope.cancel()


def leader_of(member: Member) -> str | None:
    view = member.backend.membership()
    return view.leader.worker_id if view.leader else None


async def test_one_member_leads_and_a_new_term_starts_when_it_leaves() -> None:
    async with fleet() as (group, cluster):
        a = await join(group, cluster, "a")
        await until(lambda: leader_of(a) == "a", "a leads")
        b = await join(group, cluster, "b")
        await until(lambda: leader_of(b) == "a" and len(a.backend.membership().members) == 2, "b")
        term = b.backend.membership().term
        a.scope.cancel()
        await until(lambda: leader_of(b) == "b", "b takes over")
        view = b.backend.membership()
        assert view.term == term + 1
        await until(
            lambda: [m.worker_id for m in b.backend.membership().members] == ["b"], "a gone"
        )


async def test_assignments_of_a_stale_term_never_take_effect() -> None:
    async with fleet() as (group, cluster):
        a = await join(group, cluster, "a")
        await until(lambda: leader_of(a) == "a", "a leads")
        b = await join(group, cluster, "b")
        await until(lambda: leader_of(b) == "a", "b sees a")
        stale_term = a.backend.membership().term
        a.scope.cancel()
        await until(lambda: leader_of(b) == "b", "b takes over")
        stale = Assignment(instance=F0, worker=WorkerId("b"), version=1, term=stale_term)
        await a.backend.publish_assignments(stale_term, [stale], [])
        await b.backend.publish_assignments(stale_term, [stale], [])
        await anyio.sleep(0.1)
        assert b.backend.assignments() == {}
        assert not [e for e in b.drain() if isinstance(e, AssignmentsChanged) and e.assigned]
        term = b.backend.membership().term
        fresh = Assignment(instance=F0, worker=WorkerId("b"), version=1, term=term)
        await b.backend.publish_assignments(term, [fresh], [])
        assert b.backend.assignments() == {F0: fresh}
        await until(
            lambda: any(isinstance(e, AssignmentsChanged) and e.assigned for e in b.drain()),
            "b applies its own assignment",
        )


async def test_moving_an_instance_tells_both_workers() -> None:
    async with fleet() as (group, cluster):
        a = await join(group, cluster, "a")
        await until(lambda: leader_of(a) == "a", "a leads")
        b = await join(group, cluster, "b")
        await until(lambda: len(a.backend.membership().members) == 2, "a sees b")
        term = a.backend.membership().term
        on_a = Assignment(instance=F0, worker=WorkerId("a"), version=1, term=term)
        await a.backend.publish_assignments(term, [on_a], [])
        await until(
            lambda: any(isinstance(e, AssignmentsChanged) and e.assigned for e in a.drain()), "a"
        )
        on_b = Assignment(instance=F0, worker=WorkerId("b"), version=1, term=term)
        await a.backend.publish_assignments(term, [on_b], [])
        await until(
            lambda: any(
                isinstance(e, AssignmentsChanged) and e.unassigned == (F0,) for e in a.drain()
            ),
            "a told to stop",
        )
        await until(
            lambda: any(isinstance(e, AssignmentsChanged) and e.assigned for e in b.drain()), "b"
        )


async def test_metadata_writes_are_versioned_and_reach_every_member() -> None:
    async with fleet() as (group, cluster):
        a = await join(group, cluster, "a")
        b = await join(group, cluster, "b")
        fqfn = Fqfn("public/default/f")
        v1 = FunctionRecord(fqfn=fqfn, version=1, config=FunctionConfig())
        await a.backend.write_function(v1, expected_version=0)
        with pytest.raises(VersionConflict):
            await b.backend.write_function(v1, expected_version=0)
        await until(lambda: fqfn in b.backend.functions(), "b sees the function")
        await b.backend.delete_function(fqfn, expected_version=1)
        await until(lambda: not a.backend.functions(), "a sees the deletion")
        kinds = [type(e) for e in a.drain()]
        assert kinds.count(FunctionsChanged) == 3  # the initial snapshot, the write, the delete
