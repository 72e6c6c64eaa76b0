"""The folds a worker applies to its metadata and assignment logs, and liveness."""

from __future__ import annotations

from fnworker.coordination.liveness import LivenessTable
from fnworker.coordination.topics import cluster_topics, topic_safe
from fnworker.coordination.views import AssignmentView, MetadataView
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
    view = AssignmentView(session="s")
    assert view.apply(TermStart(term=5)) is None
    assert view.apply(assign(term=4)) is None and view.held == {}
    assert view.apply(assign(term=5)) is not None and I0 in view.held
    view.learn_term(6)
    assert view.apply(Unassign(instance=I0, term=5)) is None and I0 in view.held
    assert view.apply(Unassign(instance=I0, term=6)) == ((), (I0,))


def test_a_snapshot_replaces_the_table_only_for_its_own_session() -> None:
    view = AssignmentView(session="mine")
    view.apply(assign(term=1))
    held = Assignment(
        instance=InstanceId("public/default/g:0"), worker=WorkerId("w"), version=1, term=2
    )
    assert view.apply(Snapshot(term=2, session="other", assignments=(held,))) is None
    assigned, gone = view.apply(Snapshot(term=2, session="mine", assignments=(held,))) or ((), ())
    assert assigned == (held,) and gone == (I0,) and list(view.held) == [held.instance]


def test_liveness_by_heartbeat_age_sessions_and_leaving() -> None:
    table = LivenessTable()
    a = WorkerInfo(worker_id=WorkerId("a"), worker_hostname="h", port=1)
    b = WorkerInfo(worker_id=WorkerId("b"), worker_hostname="h", port=2)
    assert table.heartbeat(a, "s1", now=0.0) and table.heartbeat(b, "s1", now=0.5)
    assert not table.heartbeat(a, "s1", now=0.9)
    assert table.live(now=1.2, dead_timeout=1.0) == (a, b)
    assert table.live(now=1.6, dead_timeout=1.0) == (a,)
    assert table.live(now=1.91, dead_timeout=1.0) == ()
    assert table.heartbeat(a, "s2", now=2.0) and not table.heartbeat(b, "s1", now=2.0)
    assert table.live(now=2.1, dead_timeout=1.0) == (a, b)
    assert not table.leaving("a", "s1") and table.leaving("a", "s2")
    assert table.live(now=2.1, dead_timeout=1.0) == (b,)


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
    table = LivenessTable()
    a = WorkerInfo(worker_id=WorkerId("a"), worker_hostname="h", port=1)
    table.expect((a,), now=0.0)
    assert not table.heartbeat(a, "s1", now=0.1)
    assert table.session_of("a") == "s1"
    assert table.heartbeat(a, "s2", now=0.2)
