"""The folds a worker applies to its metadata and assignment logs, and liveness."""

from __future__ import annotations

from fnworker.coordination.protocol.liveness import LivenessTable
from fnworker.coordination.protocol.own_assignments import OwnAssignments
from fnworker.coordination.topics import cluster_topics, topic_safe
from fnworker.coordination.views import MetadataView
from fnworker.coordination.wire import Assign, FunctionWrite, Snapshot, TermStart, Unassign
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    InstanceId,
    WorkerId,
    WorkerInfo,
)

F = Fqfn("public/default/f")
I0 = InstanceId("public/default/f:0")


def write(version: int, writer: str, deleted: bool = False) -> FunctionWrite:
    record = None if deleted else FunctionRecord(fqfn=F, version=version, config=FunctionConfig())
    return FunctionWrite(
        fqfn=F, version=version, record=record, writer=writer, request_id=f"{writer}{version}"
    )


def assign(term: int, version: int = 1) -> Assign:
    return Assign(
        assignment=Assignment(instance=I0, worker=WorkerId("w"), version=version, term=term)
    )


def test_the_first_write_of_a_version_wins_and_replays_change_nothing() -> None:
    view = MetadataView()
    assert view.apply(write(1, "a"))
    assert not view.apply(write(1, "b"))
    assert not view.apply(write(1, "a"))
    assert not view.apply(write(3, "a"))
    assert view.apply(write(2, "b", deleted=True)) and view.functions == {}


def test_records_of_an_older_term_are_fenced() -> None:
    view, change = OwnAssignments(session="s").apply(TermStart(term=5))
    assert change is None
    view, change = view.apply(assign(term=4))
    assert change is None and not view.held
    view, change = view.apply(assign(term=5))
    assert change is not None and I0 in view.held
    view = view.learn_term(6)
    view, change = view.apply(Unassign(instance=I0, term=5))
    assert change is None and I0 in view.held
    assert view.apply(Unassign(instance=I0, term=6))[1] == ((), (I0,))
    assert (
        view.apply(assign(term=6))[0].apply(assign(term=6))[0].held
        == view.apply(assign(term=6))[0].held
    )  # a record read twice changes nothing


def test_a_snapshot_replaces_the_table_only_for_its_own_session() -> None:
    view, _ = OwnAssignments(session="mine").apply(assign(term=1))
    held = Assignment(
        instance=InstanceId("public/default/g:0"), worker=WorkerId("w"), version=1, term=2
    )
    assert view.apply(Snapshot(term=2, session="other", assignments=(held,)))[1] is None
    view, change = view.apply(Snapshot(term=2, session="mine", assignments=(held,)))
    assigned, gone = change or ((), ())
    assert assigned == (held,) and gone == (I0,) and list(view.held) == [held.instance]


def test_liveness_by_heartbeat_age_sessions_and_leaving() -> None:
    a = WorkerInfo(worker_id=WorkerId("a"), worker_hostname="h", port=1)
    b = WorkerInfo(worker_id=WorkerId("b"), worker_hostname="h", port=2)
    table, fresh_a = LivenessTable().heartbeat(a, "s1", now=0.0)
    table, fresh_b = table.heartbeat(b, "s1", now=0.5)
    assert fresh_a and fresh_b
    table, fresh = table.heartbeat(a, "s1", now=0.9)
    assert not fresh
    assert table.live(now=1.2, dead_timeout=1.0) == (a, b)
    assert table.live(now=1.6, dead_timeout=1.0) == (a,)
    assert table.live(now=1.91, dead_timeout=1.0) == ()
    table, fresh_a = table.heartbeat(a, "s2", now=2.0)
    table, fresh_b = table.heartbeat(b, "s1", now=2.0)
    assert fresh_a and not fresh_b
    assert table.live(now=2.1, dead_timeout=1.0) == (a, b)
    assert table.leaving("a", "s1") is None
    left = table.leaving("a", "s2")
    assert left is not None and left.live(now=2.1, dead_timeout=1.0) == (b,)


def test_two_clusters_never_share_a_topic() -> None:
    east, west = (
        cluster_topics("public/functions-east-1"),
        cluster_topics("public/functions-west-1"),
    )
    east_names = {
        east.coordinate,
        east.heartbeats,
        east.metadata,
        east.packages,
        east.assignments_of("w"),
    }
    west_names = {
        west.coordinate,
        west.heartbeats,
        west.metadata,
        west.packages,
        west.assignments_of("w"),
    }
    assert not east_names & west_names
    assert all(n.startswith("persistent://public/functions-east-1/") for n in east_names)
    assert topic_safe("host:1") != topic_safe("host_1")


def test_an_expected_worker_s_first_heartbeat_is_not_a_new_session() -> None:
    a = WorkerInfo(worker_id=WorkerId("a"), worker_hostname="h", port=1)
    table = LivenessTable().expect((a,), now=0.0)
    table, fresh = table.heartbeat(a, "s1", now=0.1)
    assert not fresh and table.session_of("a") == "s1"
    assert table.heartbeat(a, "s2", now=0.2)[1]
