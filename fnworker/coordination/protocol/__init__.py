"""The fleet protocol as a pure state machine: what every worker and the leader
decide (liveness, claims and terms, self-fencing, take-office, the assignment
table and what to publish), as ``step(state, input, now) -> (state, outputs)``.
No I/O, no clock, no logging: imports only the wire records and scheduler.model.
"""

from fnworker.coordination.protocol.messages import (
    Delivered,
    Emit,
    HandOff,
    Input,
    InstancesRunning,
    Leave,
    Note,
    Output,
    Publish,
    Send,
    Tick,
    Timings,
    Topic,
)
from fnworker.coordination.protocol.node import step
from fnworker.coordination.protocol.state import (
    NodeState,
    handed_off,
    initial_state,
    leads,
    membership_of,
    next_wake,
    table_of,
)

__all__ = [
    "Delivered",
    "Emit",
    "HandOff",
    "Input",
    "InstancesRunning",
    "Leave",
    "NodeState",
    "Note",
    "Output",
    "Publish",
    "Send",
    "Tick",
    "Timings",
    "Topic",
    "handed_off",
    "initial_state",
    "leads",
    "membership_of",
    "next_wake",
    "step",
    "table_of",
]
