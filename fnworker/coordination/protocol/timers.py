"""What a worker does as time passes (``Tick``): heartbeats, self-fencing after a
freeze or when its heartbeats stop reaching the broker, claims when the leader is
silent, and the leader's liveness sweep and lease renewal. Pure."""

from __future__ import annotations

import msgspec

from fnworker.coordination.events import AssignmentsChanged
from fnworker.coordination.protocol import office as offices
from fnworker.coordination.protocol.leadership import (
    claim_due,
    claimed,
)
from fnworker.coordination.protocol.messages import (
    COORDINATE,
    HEARTBEATS,
    Emit,
    HeartbeatStored,
    Note,
    Output,
    Send,
)
from fnworker.coordination.protocol.reading import take_office
from fnworker.coordination.protocol.state import (
    NodeState,
    Result,
    leads,
    membership_changed,
)
from fnworker.coordination.wire import (
    Claim,
    Heartbeat,
)

# -- time passing ---------------------------------------------------------------


def on_tick(state: NodeState, now: float) -> Result:
    """Detect a freeze; send a heartbeat, a lease or a claim when due."""
    frozen_for = now - state.last_tick
    unheard_for = now - state.beat_stored_at
    state = msgspec.structs.replace(state, last_tick=now)
    outputs: list[Output] = []
    frozen = frozen_for > state.timings.dead_timeout
    if frozen or unheard_for > state.timings.dead_timeout:
        state, outputs = fence_self(state, max(frozen_for, unheard_for), now)
    if now >= state.next_heartbeat_at:
        state, beat = heartbeat(state, now)
        outputs.append(beat)
    if frozen:
        return state, outputs  # the leases we slept through are unread: claim nothing yet
    office = state.office
    if office is not None and offices.report_wait_over(office, now, state.timings):
        state, taken = take_office(state, now)
        outputs += taken
    if leads(state):
        state, led = leader_tick(state, now)
        return state, outputs + led
    return claim_if_due(state, now, outputs)


def heartbeat(state: NodeState, now: float) -> tuple[NodeState, Send]:
    """The next heartbeat, and when the one after is due."""
    seq = state.heartbeat_seq + 1
    beat = Heartbeat(worker=state.me, session=state.session, seq=seq, handing_off=state.handing_off)
    due = now + state.timings.heartbeat_interval
    in_flight = (*state.beats_in_flight[-MAX_IN_FLIGHT + 1 :], (seq, now))
    updated = msgspec.structs.replace(
        state, heartbeat_seq=seq, next_heartbeat_at=due, beats_in_flight=in_flight
    )
    return updated, Send(topic=HEARTBEATS, record=beat)


MAX_IN_FLIGHT = 64
"""Unstored heartbeats remembered (older ones cannot matter: the dead timeout passed)."""


def on_heartbeat_stored(state: NodeState, stored: HeartbeatStored) -> NodeState:
    """A heartbeat reached the broker: the leader can hear us as of its send time.

    A worker whose heartbeats have not been stored for the dead timeout (its broker
    connection is cut, or sends stall) fences itself on the next tick, exactly as
    after a freeze: the leader has declared it dead by then."""
    sent_at = [at for seq, at in state.beats_in_flight if seq == stored.seq]
    in_flight = tuple(beat for beat in state.beats_in_flight if beat[0] > stored.seq)
    stored_at = max(state.beat_stored_at, *sent_at)
    return msgspec.structs.replace(state, beats_in_flight=in_flight, beat_stored_at=stored_at)


def fence_self(state: NodeState, frozen_for: float, now: float) -> Result:
    """Woken from a freeze longer than the dead timeout, or unheard for that long:
    the leader has probably declared us dead. Stop everything, come back as a new
    session, and hear the leader (and, when leading, every member) afresh, so that records we slept
    through and have not read yet are not taken for silence."""
    fences = state.fences + 1
    mine, gone = state.mine.dropped(f"{state.session_base}.{fences}")
    office = state.office
    if office is not None:
        office = msgspec.structs.replace(office, liveness=office.liveness.heard_all(now))
    state = msgspec.structs.replace(
        state,
        fences=fences,
        mine=mine,
        office=office,
        leadership=msgspec.structs.replace(state.leadership, heard_at=now),
        next_heartbeat_at=now,
        beat_stored_at=now,
    )
    return state, [
        Note(
            event="worker was frozen; stopping its instances",
            level="warning",
            fields=(("frozen_seconds", round(frozen_for, 2)),),
        ),
        Emit(event=AssignmentsChanged(term=mine.term, unassigned=gone)),
    ]


def claim_if_due(state: NodeState, now: float, outputs: list[Output]) -> Result:
    """Claim the next term when the leader has been silent too long."""
    timings = state.timings
    term = claim_due(
        state.leadership,
        state.me.worker_id,
        now,
        timings.lease_timeout,
        timings.claim_stagger,
        state.session_base,
    )
    if term is None:
        return state, outputs
    state = msgspec.structs.replace(state, leadership=claimed(state.leadership, term, now))
    claim = Claim(term=term, candidate=state.me, process=state.session_base)
    return state, [
        *outputs,
        Note(event="claiming leadership", fields=(("term", term),)),
        Send(topic=COORDINATE, record=claim),
    ]


def leader_tick(state: NodeState, now: float) -> Result:
    """Failure detection and lease renewal, once per tick while leading."""
    assert state.office is not None
    office, gone = offices.sweep(state.office, now, state.timings)
    outputs: list[Output] = []
    if gone is not None:
        if gone:
            fields = (("workers", gone), ("term", office.term))
            outputs.append(Note(event="workers declared dead", fields=fields))
        state = msgspec.structs.replace(state, office=office)
        outputs.append(membership_changed(state))
    if offices.lease_due(office, now, state.timings):
        office, lease = offices.renew_lease(office, state.me, now)
        state = msgspec.structs.replace(state, office=office)
        outputs.append(lease)
    return state, outputs
