"""Which of the fleet's topics a worker needs to read, from its protocol state. Pure.

Only the leader acts on heartbeats and ``Leaving`` records (``protocol/reading.py``
drops them everywhere else), so only a worker that leads, or is taking office for
the current term, needs the heartbeats topic: every other reader would cost the
fleet O(workers²) messages for nothing (docs/coordination.md, Scale).

Opening the reader when the office is still *pending* (before it is ready) loses
nothing: a pending office ignores heartbeats too, and take-office seeds the
liveness table with the last lease's members as just heard from
(``LivenessTable.expect``), so a heartbeat or ``Leaving`` sent before the reader
opened only means that worker is judged by its next heartbeat, or by the dead
timeout.
"""

from __future__ import annotations

from fnworker.coordination.protocol import NodeState


def reads_heartbeats(state: NodeState) -> bool:
    """True while this worker leads the current term or is taking office for it."""
    office = state.office
    return office is not None and office.term == state.leadership.term
