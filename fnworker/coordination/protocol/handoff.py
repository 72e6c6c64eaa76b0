"""A graceful stop's hand-off, the worker's side: ``HandOff`` starts it (every
heartbeat from then on asks the leader to move this worker's instances), the
instances handed over to a worker are remembered until its runtime runs them
(``InstancesRunning``; ``reading.awaiting_after`` keeps that set), and then
confirmed to the leader with a ``Running`` record, so that their previous owner
stops its copies only then. Pure.

The leader's side (no placement on a handing-off worker, the old owner's
``Unassign`` held back until ``Running``) is in ``office.py``.
"""

from __future__ import annotations

import msgspec

from fnworker.coordination.events import AssignmentsChanged
from fnworker.coordination.protocol.messages import (
    HEARTBEATS,
    Emit,
    HandOff,
    InstancesRunning,
    Note,
    Output,
    Send,
)
from fnworker.coordination.protocol.own_assignments import NOTHING
from fnworker.coordination.protocol.state import NodeState, Result
from fnworker.coordination.protocol.timers import heartbeat
from fnworker.coordination.wire import Running


def on_hand_off(state: NodeState, hand_off: HandOff, now: float) -> Result:
    """Start handing off: say so at once with a heartbeat (and in every later one)."""
    if state.handing_off:
        return state, []
    until = now + hand_off.timeout
    state = msgspec.structs.replace(state, handing_off=True, hand_off_until=until)
    state, beat = heartbeat(state, now)
    note = Note(event="handing instances off", fields=(("instances", len(state.mine.held)),))
    return state, [note, beat]


def on_instances_running(state: NodeState, running: InstancesRunning) -> Result:
    """Confirm to the leader the handed-over instances that run here now."""
    confirmed = tuple(i for i in running.instances if i in state.awaiting)
    if not confirmed:
        return state, []
    state = msgspec.structs.replace(state, awaiting=state.awaiting.difference(confirmed))
    record = Running(worker_id=state.me.worker_id, session=state.session, instances=confirmed)
    return state, [Send(topic=HEARTBEATS, record=record)]


def give_up_if_overdue(state: NodeState, now: float, outputs: list[Output]) -> Result:
    """After a tick: a hand-off past its timeout stops whatever is still held here (a
    new owner that never confirmed, a leader that never moved it); the worker then
    leaves, and the leader moves the rest as after any clean stop."""
    until = state.hand_off_until
    if until is None or now < until or not state.mine.held:
        return state, outputs
    mine = state.mine.replace(state.mine.term, NOTHING)
    gone = tuple(state.mine.held)
    state = msgspec.structs.replace(state, mine=mine, hand_off_gave_up=True)
    note = Note(event="hand-off timed out", level="warning", fields=(("instances", len(gone)),))
    return state, [*outputs, note, Emit(event=AssignmentsChanged(term=mine.term, unassigned=gone))]
