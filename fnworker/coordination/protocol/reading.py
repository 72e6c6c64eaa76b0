"""What a worker does with each record its readers deliver (claims, leases,
reports, heartbeats, its own assignments), including the leader's take-office
and the leader's planning pass turned into records. Pure."""

from __future__ import annotations

import msgspec

from fnworker.coordination.events import AssignmentsChanged
from fnworker.coordination.protocol import office as offices
from fnworker.coordination.protocol.leadership import (
    Leadership,
    on_claim,
    on_lease,
)
from fnworker.coordination.protocol.messages import (
    COORDINATE,
    Delivered,
    Emit,
    Note,
    Output,
    Publish,
    Send,
)
from fnworker.coordination.protocol.state import (
    NO_REPORTS,
    NodeState,
    Result,
    leads,
    membership_changed,
)
from fnworker.coordination.wire import (
    Assign,
    AssignmentRecord,
    Claim,
    Heartbeat,
    Lease,
    Leaving,
    Report,
    Running,
    Snapshot,
    TermStart,
    Unassign,
)
from fnworker.scheduler.model.records import InstanceId

# -- records read ---------------------------------------------------------------


def on_delivered(state: NodeState, delivered: Delivered, now: float) -> Result:
    """Apply one record a reader delivered."""
    record = delivered.record
    if isinstance(record, Claim | Lease):
        return on_leadership_record(state, record, now)
    if isinstance(record, Report):
        return on_report(state, record, now)
    if isinstance(record, Heartbeat):
        return on_heartbeat(state, record, now)
    if isinstance(record, Leaving):
        return on_leaving(state, record, now)
    if isinstance(record, Running):
        return on_running(state, record)
    assert isinstance(record, TermStart | Assign | Unassign | Snapshot)
    mine, change = state.mine.apply(record)
    state = msgspec.structs.replace(state, mine=mine)
    state = msgspec.structs.replace(state, awaiting=awaiting_after(state, record))
    if change is None:
        return state, []
    assigned, unassigned = change
    event = AssignmentsChanged(term=mine.term, assigned=assigned, unassigned=unassigned)
    return state, [Emit(event=event)]


def awaiting_after(state: NodeState, record: AssignmentRecord) -> frozenset[InstanceId]:
    """The handed-over instances this worker still has to confirm after applying one
    own record: a handed-over ``Assign`` adds its instance; only what it holds stays."""
    awaiting = state.awaiting
    if isinstance(record, Assign) and record.handover:
        awaiting = awaiting | {record.assignment.instance}
    if not awaiting:
        return awaiting
    return frozenset(i for i in awaiting if i in state.mine.held)


def on_leadership_record(state: NodeState, record: Claim | Lease, now: float) -> Result:
    """Apply a claim or a lease; react to a new term."""
    before = state.leadership
    if isinstance(record, Claim):
        after = on_claim(before, record, now)
    else:
        after = on_lease(before, record, now)
    state = msgspec.structs.replace(state, leadership=after)
    if after.term != before.term:
        return on_new_term(state, before, now)
    if after.members != before.members and not leads(state):
        return state, [membership_changed(state)]
    return state, []


def on_new_term(state: NodeState, before: Leadership, now: float) -> Result:
    """A new term began: fence older records, report what we hold, maybe take office."""
    lead = state.leadership
    office = state.office if state.office is not None and state.office.term == lead.term else None
    state = msgspec.structs.replace(
        state, mine=state.mine.learn_term(lead.term), reports=NO_REPORTS, office=office
    )
    report = Report(
        worker_id=state.me.worker_id,
        session=state.session,
        term=lead.term,
        held=tuple(state.mine.held.values()),
    )
    leader = lead.leader.worker_id if lead.leader else None
    outputs: list[Output] = [
        Note(event="leadership term", fields=(("term", lead.term), ("leader", leader))),
        Send(topic=COORDINATE, record=report),
    ]
    if lead.leads(state.me.worker_id, state.session_base):
        silent = before.leader.worker_id if before.leader else None
        pending = offices.open_office(
            lead.term, now, state.me, state.session_base, before.members, silent
        )
        state = msgspec.structs.replace(state, office=pending)
    return state, [*outputs, membership_changed(state)]


def on_report(state: NodeState, report: Report, now: float) -> Result:
    """Keep a report of the current term; it may complete a pending take-over, or
    (arriving after it) be merged into the leader's table."""
    if report.term != state.leadership.term:
        return state, []
    state = msgspec.structs.replace(state, reports=state.reports.set(report.worker_id, report))
    office = state.office
    if office is None or office.term != report.term:
        return state, []
    if not office.ready:
        if offices.reports_complete(office, state.reports):
            return take_office(state, now)
        return state, []
    office, sends = offices.late_report(office, report)
    return msgspec.structs.replace(state, office=office), list(sends)


def take_office(state: NodeState, now: float) -> Result:
    """Lead: the table from the reports in, every member's topic fenced, a lease out."""
    assert state.office is not None
    office, sends = offices.take_office(
        state.office, state.reports.values(), state.me, now, state.timings
    )
    state = msgspec.structs.replace(state, office=office)
    note = Note(
        event="leading",
        fields=(
            ("term", office.term),
            ("members", len(office.live)),
            ("instances", len(office.table)),
        ),
    )
    return state, [*sends, note, membership_changed(state)]


def on_heartbeat(state: NodeState, beat: Heartbeat, now: float) -> Result:
    """Leader: update liveness; a new session gets its assignments re-sent."""
    if not leads(state):
        return state, []
    assert state.office is not None
    handing = state.office.handing
    office, sends = offices.on_heartbeat(state.office, beat, now, state.timings)
    state = msgspec.structs.replace(state, office=office)
    if not sends and office.handing == handing:
        return state, []
    return state, [*sends, membership_changed(state)]


def on_running(state: NodeState, running: Running) -> Result:
    """Leader: handed-over instances run on their new owner; stop the old copies."""
    if not leads(state):
        return state, []
    assert state.office is not None
    office, sends = offices.on_running(state.office, running)
    return msgspec.structs.replace(state, office=office), list(sends)


def on_leaving(state: NodeState, leaving: Leaving, now: float) -> Result:
    """Leader: a worker left cleanly; plan without it at once."""
    if not leads(state):
        return state, []
    assert state.office is not None
    office = offices.on_leaving(state.office, leaving, now, state.timings)
    if office is None:
        return state, []
    state = msgspec.structs.replace(state, office=office)
    note = Note(event="worker left", fields=(("worker", leaving.worker_id),))
    return state, [note, membership_changed(state)]


# -- the leader's planning pass -------------------------------------------------


def on_publish(state: NodeState, publish: Publish) -> Result:
    """Leader only: write what changed to each worker's own topic; a stale term is refused."""
    if not leads(state) or publish.term != state.leadership.term:
        fields = (("term", publish.term), ("current", state.leadership.term))
        return state, [Note(event="stale leader write refused", level="warning", fields=fields)]
    assert state.office is not None
    office, sends = offices.publish(state.office, publish.assigned, publish.unassigned)
    return msgspec.structs.replace(state, office=office), list(sends)
