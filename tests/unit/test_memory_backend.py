"""The in-process coordination backend: leadership, terms, fencing, versions."""

from __future__ import annotations

import anyio
import pytest

from fnworker.coordination.backend import (
    AssignmentsChanged,
    FunctionsChanged,
    MembershipChanged,
    VersionConflict,
)
from fnworker.coordination.memory import MemoryCluster, MemoryCoordination
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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def info(name: str) -> WorkerInfo:
    return WorkerInfo(worker_id=WorkerId(name), worker_hostname="localhost", port=1)


def drain(stream) -> list:  # type: ignore[no-untyped-def]
    events = []
    while True:
        try:
            events.append(stream.receive_nowait())
        except anyio.WouldBlock:
            return events


async def test_first_member_leads_and_leadership_moves_with_a_new_term() -> None:
    cluster = MemoryCluster()
    first, second = MemoryCoordination(cluster), MemoryCoordination(cluster)
    await first.join(info("a"))
    stream = await second.join(info("b"))
    assert second.membership().leader == info("a")
    term = second.membership().term
    await first.leave()
    view = second.membership()
    assert view.leader == info("b") and view.term == term + 1
    assert [m.worker_id for m in view.members] == ["b"]
    assert any(isinstance(e, MembershipChanged) and e.view == view for e in drain(stream))


async def test_assignments_of_a_stale_term_never_take_effect() -> None:
    cluster = MemoryCluster()
    old_leader, follower = MemoryCoordination(cluster), MemoryCoordination(cluster)
    await old_leader.join(info("a"))
    stream = await follower.join(info("b"))
    stale_term = cluster.term
    await old_leader.leave()
    drain(stream)
    instance = InstanceId("public/default/f:0")
    stale = Assignment(instance=instance, worker=WorkerId("b"), version=1, term=stale_term)
    await old_leader.publish_assignments(stale_term, [stale], [])
    assert follower.assignments() == {}
    assert not [e for e in drain(stream) if isinstance(e, AssignmentsChanged)]
    fresh = Assignment(instance=instance, worker=WorkerId("b"), version=1, term=cluster.term)
    await follower.publish_assignments(cluster.term, [fresh], [])
    assert follower.assignments() == {instance: fresh}
    changes = [e for e in drain(stream) if isinstance(e, AssignmentsChanged)]
    assert changes == [AssignmentsChanged(term=cluster.term, assigned=(fresh,))]


async def test_moving_an_instance_tells_both_workers() -> None:
    cluster = MemoryCluster()
    a, b = MemoryCoordination(cluster), MemoryCoordination(cluster)
    stream_a, stream_b = await a.join(info("a")), await b.join(info("b"))
    instance = InstanceId("public/default/f:0")
    await a.publish_assignments(
        cluster.term,
        [Assignment(instance=instance, worker=WorkerId("a"), version=1, term=cluster.term)],
        [],
    )
    drain(stream_a), drain(stream_b)
    await a.publish_assignments(
        cluster.term,
        [Assignment(instance=instance, worker=WorkerId("b"), version=1, term=cluster.term)],
        [],
    )
    assert [e.unassigned for e in drain(stream_a) if isinstance(e, AssignmentsChanged)] == [
        (instance,)
    ]
    assert [len(e.assigned) for e in drain(stream_b) if isinstance(e, AssignmentsChanged)] == [1]


async def test_metadata_writes_are_versioned() -> None:
    cluster = MemoryCluster()
    worker = MemoryCoordination(cluster)
    stream = await worker.join(info("a"))
    fqfn = Fqfn("public/default/f")
    v1 = FunctionRecord(fqfn=fqfn, version=1, config=FunctionConfig())
    await worker.write_function(v1, expected_version=0)
    with pytest.raises(VersionConflict):
        await worker.write_function(v1, expected_version=0)
    await worker.delete_function(fqfn, expected_version=1)
    assert worker.functions() == {}
    kinds = [type(e) for e in drain(stream)]
    assert kinds.count(FunctionsChanged) == 3  # the initial snapshot, the write, the delete
