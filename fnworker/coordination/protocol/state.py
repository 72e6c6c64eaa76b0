"""One worker's protocol state (a frozen record) and what the backend reads from
it: who leads, the membership view, the leader's table, when to tick next. Pure."""

from __future__ import annotations

import immutables
import msgspec

from fnworker.coordination.events import MembershipChanged, MembershipView
from fnworker.coordination.protocol.leadership import (
    Leadership,
)
from fnworker.coordination.protocol.messages import (
    Emit,
    Output,
    Timings,
)
from fnworker.coordination.protocol.office import EMPTY_TABLE, Office, Table
from fnworker.coordination.protocol.own_assignments import OwnAssignments
from fnworker.coordination.wire import (
    Report,
)
from fnworker.scheduler.model.records import InstanceId, WorkerInfo

Reports = immutables.Map[str, Report]
NO_REPORTS: Reports = immutables.Map()


class NodeState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one worker knows about the fleet protocol at one moment."""

    me: WorkerInfo
    timings: Timings
    session_base: str
    fences: int = 0
    leadership: Leadership
    mine: OwnAssignments
    reports: Reports = NO_REPORTS
    """Reports of the current term, by worker id."""
    office: Office | None = None
    last_tick: float
    next_heartbeat_at: float
    heartbeat_seq: int = 0
    beats_in_flight: tuple[tuple[int, float], ...] = ()
    """(seq, sent at) of heartbeats whose send has not returned yet."""
    beat_stored_at: float
    """When the newest heartbeat the broker stored was sent: the leader has heard
    from this worker no earlier than that."""
    handing_off: bool = False
    """This worker stops gracefully: its heartbeats ask the leader to move its instances."""
    awaiting: frozenset[InstanceId] = frozenset()
    """Instances handed over to this worker whose running it has not confirmed yet."""
    hand_off_until: float | None = None
    """When a hand-off gives up: what is still held then is stopped here at once."""
    hand_off_gave_up: bool = False
    """The hand-off reached ``hand_off_until`` with instances still held here."""

    @property
    def session(self) -> str:
        """This process's current session: new after every self-fencing."""
        return self.mine.session


Result = tuple[NodeState, list[Output]]


def initial_state(me: WorkerInfo, session: str, timings: Timings, now: float) -> NodeState:
    """A worker that starts at ``now``: it has heard nobody yet, and heartbeats at once."""
    return NodeState(
        me=me,
        timings=timings,
        session_base=session,
        leadership=Leadership(heard_at=now),
        mine=OwnAssignments(session=session),
        last_tick=now,
        next_heartbeat_at=now,
        beat_stored_at=now,
    )


# -- views (what the backend answers) -------------------------------------------


def leads(state: NodeState) -> bool:
    """True once this worker leads the current term and has taken office."""
    office = state.office
    return office is not None and office.ready and office.term == state.leadership.term


def membership_of(state: NodeState) -> MembershipView:
    """The fleet: the leader's own liveness table, or the last lease elsewhere."""
    lead = state.leadership
    if leads(state):
        assert state.office is not None
        office = state.office
        handing = tuple(sorted(office.handing))
        return MembershipView(
            term=lead.term, leader=lead.leader, members=office.live, handing_off=handing
        )
    leader = None if lead.leads(state.me.worker_id, state.session_base) else lead.leader
    return MembershipView(term=lead.term, leader=leader, members=lead.members)


def handed_off(state: NodeState) -> bool:
    """True once a worker that hands off holds nothing any more: it may leave."""
    return state.handing_off and not state.mine.held


def table_of(state: NodeState) -> Table:
    """The whole fleet's assignments (the leader's table; empty elsewhere)."""
    return state.office.table if state.office is not None else EMPTY_TABLE


def next_wake(state: NodeState) -> float:
    """When this worker next needs a ``Tick`` (if nothing else happens first)."""
    wake = min(state.last_tick + state.timings.lease_renew / 2, state.next_heartbeat_at)
    office = state.office
    if office is not None and not office.ready:
        wake = min(wake, office.since + state.timings.report_wait)
    return wake


def membership_changed(state: NodeState) -> Emit:
    """The event telling the worker its view of the fleet changed."""
    return Emit(event=MembershipChanged(view=membership_of(state)))
