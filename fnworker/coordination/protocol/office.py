"""The leader's side of one term, as pure functions over a frozen ``Office``:
take office from the members' reports, keep the fleet's assignment table, turn a
planning pass into records, and keep the liveness table and the lease. No I/O.

An office opens when this worker's claim wins. It is *pending* until every
expected member has reported what it holds (or ``report_wait`` has passed), then
*ready*: the table is rebuilt from the reports, every member's assignment topic
is fenced with ``TermStart``, and only then does the worker lead.

A member whose heartbeats say it hands off (a graceful stop) gets nothing new; an
instance moved off it is not unassigned there at once: it stays in ``handovers``
until the new owner says it runs it (``Running``), and only then does the old
owner get its ``Unassign`` (docs/coordination.md, "Graceful stop: hand-off").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import immutables
import msgspec

from fnworker.coordination.protocol.liveness import LivenessTable
from fnworker.coordination.protocol.messages import (
    COORDINATE,
    Send,
    Timings,
    assignments_topic,
)
from fnworker.coordination.wire import (
    Assign,
    Heartbeat,
    Lease,
    Leaving,
    Report,
    Running,
    Snapshot,
    TermStart,
    Unassign,
)
from fnworker.scheduler.model.records import Assignment, InstanceId, WorkerInfo

Table = Mapping[InstanceId, Assignment]
"""The leader's table: a dict never changed once made (a change makes a new one, an
O(n) copy per planning pass), so the leader's planner can compare it with the
table its last plan left at C speed."""
EMPTY_TABLE: Table = {}
Handovers = immutables.Map[InstanceId, str]
NO_HANDOVERS: Handovers = immutables.Map()


class Office(msgspec.Struct, frozen=True, kw_only=True):
    """This worker leads ``term`` (``ready``) or is taking office (not yet ready)."""

    term: int
    process: str
    since: float
    expected: tuple[WorkerInfo, ...]
    ready: bool = False
    table: Table = EMPTY_TABLE
    liveness: LivenessTable = LivenessTable()
    live: tuple[WorkerInfo, ...] = ()
    last_lease_at: float = 0.0
    lease_seq: int = 0
    handing: frozenset[str] = frozenset()
    """Live members handing their instances off: nothing is placed on them."""
    handovers: Handovers = NO_HANDOVERS
    """Instance -> the handing-off worker still running it until its new owner runs it."""


def open_office(
    term: int,
    now: float,
    me: WorkerInfo,
    process: str,
    previous: tuple[WorkerInfo, ...],
    silent: str | None,
) -> Office:
    """A pending office: wait for the reports of the last lease's members and our own.

    ``silent`` (the old leader, which went silent) is not waited for, and counts as
    a member again only if it heartbeats."""
    known = {m.worker_id: m for m in previous if m.worker_id != silent}
    known[me.worker_id] = me
    return Office(term=term, process=process, since=now, expected=tuple(known.values()))


def reports_complete(office: Office, reports: immutables.Map[str, Report]) -> bool:
    """True when every expected member has reported for this term."""
    return all(m.worker_id in reports for m in office.expected)


def report_wait_over(office: Office, now: float, timings: Timings) -> bool:
    """True when a pending office has waited long enough for missing reports."""
    return not office.ready and now - office.since >= timings.report_wait


def take_office(
    office: Office, reports: Iterable[Report], me: WorkerInfo, now: float, timings: Timings
) -> tuple[Office, list[Send]]:
    """Rebuild the table from the reports, fence every expected member's topic, lead.

    A reporter that holds something the rebuilt table gives to another worker (two
    reports claimed it) gets a snapshot of what it should run."""
    reports = list(reports)
    sessions = {report.worker_id: report.session for report in reports}
    liveness = LivenessTable().expect(office.expected, now, sessions)
    ready = msgspec.structs.replace(
        office,
        ready=True,
        table=rebuild_table(reports),
        liveness=liveness,
        live=liveness.live(now, timings.dead_timeout),
    )
    fences = [
        Send(topic=assignments_topic(m.worker_id), record=TermStart(term=office.term))
        for m in office.expected
    ]
    corrections = [
        send
        for report in reports
        if {a.instance for a in report.held} != instances_of(ready, report.worker_id)
        for send in snapshot_of(ready, report.worker_id, report.session)
    ]
    ready, lease = renew_lease(ready, me, now)
    return ready, [*fences, *corrections, lease]


def instances_of(office: Office, worker_id: str) -> set[InstanceId]:
    """The instances the table gives to ``worker_id``."""
    return {i for i, a in office.table.items() if a.worker == worker_id}


def renew_lease(office: Office, me: WorkerInfo, now: float) -> tuple[Office, Send]:
    """Tell the fleet this worker still leads, and who is alive."""
    seq = office.lease_seq + 1
    lease = Lease(term=office.term, leader=me, members=office.live, seq=seq, process=office.process)
    renewed = msgspec.structs.replace(office, lease_seq=seq, last_lease_at=now)
    return renewed, Send(topic=COORDINATE, record=lease)


def rebuild_table(reports: Iterable[Report]) -> Table:
    """The fleet's assignments from workers' reports; the newest claim to an instance wins."""
    table: dict[InstanceId, Assignment] = {}
    for report in reports:
        for assignment in report.held:
            previous = table.get(assignment.instance)
            if previous is None or (assignment.term, assignment.version) > (
                previous.term,
                previous.version,
            ):
                table[assignment.instance] = assignment
    return table


def late_report(office: Office, report: Report) -> tuple[Office, list[Send]]:
    """A report that missed the take-over: keep what nobody else took, and send the
    reporter's session a snapshot of what it should run (so it stops what others
    took, and learns what the table gave it that its report does not show, as a
    worker restarted with the same id must)."""
    table = dict(office.table)
    for assignment in report.held:
        if assignment.instance not in table:
            table[assignment.instance] = assignment
    merged = msgspec.structs.replace(
        office, table=table, liveness=office.liveness.reported(report.worker_id, report.session)
    )
    return merged, snapshot_of(merged, report.worker_id, report.session)


def publish(
    office: Office, assigned: Iterable[Assignment], unassigned: Iterable[InstanceId]
) -> tuple[Office, list[Send]]:
    """The records of a planning pass, each on its worker's own topic, and the new table.

    An instance moved off a handing-off worker is not unassigned there: that worker
    runs it until the new owner, told by ``Assign.handover``, says it runs it."""
    term = office.term
    sends = []
    table = dict(office.table)
    handovers = office.handovers
    for instance in unassigned:
        previous = table.pop(instance, None)
        if previous is not None:
            sends.append(unassign(previous.worker, instance, term))
        if instance in handovers:
            sends.append(unassign(handovers[instance], instance, term))
            handovers = handovers.delete(instance)
    for assignment in assigned:
        previous = table.get(assignment.instance)
        if previous is not None and previous.worker != assignment.worker:
            if previous.worker in office.handing:
                handovers = handovers.set(assignment.instance, previous.worker)
            else:
                sends.append(unassign(previous.worker, assignment.instance, term))
        table[assignment.instance] = assignment
        record = Assign(assignment=assignment, handover=assignment.instance in handovers)
        sends.append(Send(topic=assignments_topic(assignment.worker), record=record))
    return msgspec.structs.replace(office, table=table, handovers=handovers), sends


def unassign(worker: str, instance: InstanceId, term: int) -> Send:
    """The record that stops ``instance`` on ``worker``."""
    return Send(topic=assignments_topic(worker), record=Unassign(instance=instance, term=term))


def on_running(office: Office, running: Running) -> tuple[Office, list[Send]]:
    """The new owner runs instances handed over to it: their old owners stop them."""
    handovers = office.handovers
    sends = []
    for instance in running.instances:
        source = handovers.get(instance)
        current = office.table.get(instance)
        if source is None or current is None or current.worker != running.worker_id:
            continue
        sends.append(unassign(source, instance, office.term))
        handovers = handovers.delete(instance)
    return msgspec.structs.replace(office, handovers=handovers), sends


def with_handing(office: Office, now: float, timings: Timings) -> Office:
    """The office with ``handing`` recomputed, and the hand-overs of workers that are
    gone forgotten."""
    handing = office.liveness.handing_off(now, timings.dead_timeout)
    handovers = office.handovers
    if handovers:
        live = {w.worker_id for w in office.live}
        handovers = immutables.Map({i: w for i, w in handovers.items() if w in live})
    return msgspec.structs.replace(office, handing=handing, handovers=handovers)


def on_heartbeat(
    office: Office, beat: Heartbeat, now: float, timings: Timings
) -> tuple[Office, list[Send]]:
    """Update liveness; a new session (a restart, or a worker that fenced itself) gets
    a snapshot of what it should run."""
    liveness, fresh = office.liveness.heartbeat(beat.worker, beat.session, now, beat.handing_off)
    flipped = beat.handing_off != (beat.worker.worker_id in office.handing)
    if not fresh and not flipped:
        return msgspec.structs.replace(office, liveness=liveness), []
    updated = msgspec.structs.replace(
        office, liveness=liveness, live=liveness.live(now, timings.dead_timeout)
    )
    updated = with_handing(updated, now, timings)
    if not fresh:
        return updated, []
    return updated, snapshot_of(office, beat.worker.worker_id, beat.session)


def snapshot_of(office: Office, worker_id: str, session: str) -> list[Send]:
    """Everything ``worker_id`` should run under this term, for its ``session``."""
    held = tuple(a for a in office.table.values() if a.worker == worker_id)
    topic = assignments_topic(worker_id)
    snapshot = Snapshot(term=office.term, session=session, assignments=held)
    return [
        Send(topic=topic, record=TermStart(term=office.term)),
        Send(topic=topic, record=snapshot),
    ]


def on_leaving(office: Office, leaving: Leaving, now: float, timings: Timings) -> Office | None:
    """Forget a worker that left cleanly; None if it was not known with that session."""
    liveness = office.liveness.leaving(leaving.worker_id, leaving.session)
    if liveness is None:
        return None
    updated = msgspec.structs.replace(
        office, liveness=liveness, live=liveness.live(now, timings.dead_timeout)
    )
    return with_handing(updated, now, timings)


def sweep(office: Office, now: float, timings: Timings) -> tuple[Office, tuple[str, ...] | None]:
    """Recompute who is alive; the ids declared dead since the last sweep (None when
    the live set did not change)."""
    live = office.liveness.live(now, timings.dead_timeout)
    if live == office.live:
        return office, None
    gone = tuple(sorted({w.worker_id for w in office.live} - {w.worker_id for w in live}))
    return with_handing(msgspec.structs.replace(office, live=live), now, timings), gone


def lease_due(office: Office, now: float, timings: Timings) -> bool:
    """True when the lease must be renewed."""
    return now - office.last_lease_at >= timings.lease_renew
