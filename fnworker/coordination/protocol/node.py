"""One worker's side of the fleet protocol: ``step(state, input, now) -> (state,
outputs)``. Pure: no I/O, no clock (``now`` is an argument), frozen state.

Every worker runs the same ``step`` over what its readers deliver (claims, leases
and reports on the coordinate topic, heartbeats, its own assignment records),
over ``Tick``s (time passed) and over its own leader's planning passes. The
outputs say what to publish, what to tell the worker, and what to log. A
transport (``fnworker/coordination/driver.py`` over Pulsar or in-memory topics)
feeds the inputs and carries out the outputs.
"""

from __future__ import annotations

from fnworker.coordination.protocol.handoff import (
    give_up_if_overdue,
    on_hand_off,
    on_instances_running,
)
from fnworker.coordination.protocol.messages import (
    HEARTBEATS,
    Delivered,
    HandOff,
    HeartbeatStored,
    Input,
    InstancesRunning,
    Leave,
    Publish,
    Send,
    Tick,
)
from fnworker.coordination.protocol.reading import on_delivered, on_publish
from fnworker.coordination.protocol.state import (
    NodeState,
    Result,
)
from fnworker.coordination.protocol.timers import on_heartbeat_stored, on_tick
from fnworker.coordination.wire import (
    Leaving,
)


def step(state: NodeState, event: Input, now: float) -> Result:
    """Apply one input at time ``now``; the new state and what to do about it."""
    if isinstance(event, Tick):
        state, outputs = on_tick(state, now)
        return give_up_if_overdue(state, now, outputs)
    if isinstance(event, Delivered):
        return on_delivered(state, event, now)
    if isinstance(event, Publish):
        return on_publish(state, event)
    if isinstance(event, HeartbeatStored):
        return on_heartbeat_stored(state, event), []
    if isinstance(event, HandOff):
        return on_hand_off(state, event, now)
    if isinstance(event, InstancesRunning):
        return on_instances_running(state, event)
    assert isinstance(event, Leave)
    leaving = Leaving(worker_id=state.me.worker_id, session=state.session)
    return state, [Send(topic=HEARTBEATS, record=leaving)]
