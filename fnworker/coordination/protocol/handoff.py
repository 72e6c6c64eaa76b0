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

from fnworker.coordination.protocol.messages import HEARTBEATS, InstancesRunning, Note, Send
from fnworker.coordination.protocol.state import NodeState, Result
from fnworker.coordination.protocol.timers import heartbeat
from fnworker.coordination.wire import Running


def on_hand_off(state: NodeState, now: float) -> Result:
    """Start handing off: say so at once with a heartbeat (and in every later one)."""
    if state.handing_off:
        return state, []
    state = msgspec.structs.replace(state, handing_off=True)
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
