"""Leadership from a log, as a pure state machine: every worker applies the same
``Claim`` and ``Lease`` records in the same order and so agrees on who leads
which term. Time comes in as an argument; there is no I/O here.

Rules (the same on every reader):
- A ``Claim`` for a term higher than the current one wins; later claims for
  that term (or lower) lose. The winner leads from then on.
- A ``Lease`` of a higher term is adopted (a reader that started late learns the
  term this way); a lease of the current term from its leader refreshes it; a
  lease of an older term is a stale leader talking and is ignored.
- A worker that has seen no lease from the leader for ``lease_timeout`` claims
  the next term, after waiting ``rank x stagger`` so the fleet does not stampede.
"""

from __future__ import annotations

import msgspec

from fnworker.coordination.wire import Claim, Lease
from fnworker.scheduler.model.records import WorkerInfo


class Leadership(msgspec.Struct, frozen=True, kw_only=True):
    """One worker's view of leadership; ``heard_at`` is when the leader last spoke."""

    term: int = 0
    leader: WorkerInfo | None = None
    members: tuple[WorkerInfo, ...] = ()
    heard_at: float = 0.0
    claimed_term: int = 0
    claimed_at: float = 0.0
    leader_process: str = ""
    """The leader's process: a worker restarted with the same id is not the leader
    its predecessor was (it must not act on the claims it replays from the log)."""

    def leads(self, worker_id: str, process: str | None = None) -> bool:
        """True when ``worker_id`` (in ``process``, if given) leads the current term."""
        return (
            self.leader is not None
            and self.leader.worker_id == worker_id
            and (process is None or self.leader_process == process)
        )


def on_claim(state: Leadership, claim: Claim, now: float) -> Leadership:
    """Apply a claim: the first one for a higher term starts that term."""
    if claim.term <= state.term:
        return state
    members = (
        state.members if claim.candidate in state.members else (*state.members, claim.candidate)
    )
    return msgspec.structs.replace(
        state,
        term=claim.term,
        leader=claim.candidate,
        leader_process=claim.process,
        heard_at=now,
        members=members,
    )


def on_lease(state: Leadership, lease: Lease, now: float) -> Leadership:
    """Apply a lease: adopt a higher term, refresh the current one, ignore older ones."""
    if lease.term < state.term:
        return state
    if (
        lease.term == state.term
        and state.leader is not None
        and not state.leads(lease.leader.worker_id, lease.process)
    ):
        return state
    return msgspec.structs.replace(
        state,
        term=lease.term,
        leader=lease.leader,
        leader_process=lease.process,
        members=lease.members,
        heard_at=now,
    )


def claim_due(
    state: Leadership,
    me: str,
    now: float,
    lease_timeout: float,
    stagger: float,
    process: str | None = None,
) -> int | None:
    """The term to claim now, or None: only when the leader has been silent too long."""
    if state.leads(me, process):
        return None
    rank = rank_of(state, me)
    silent_for = now - state.heard_at
    if silent_for < lease_timeout + rank * stagger:
        return None
    wanted = state.term + 1
    if state.claimed_term == wanted and now - state.claimed_at < lease_timeout:
        return None
    return wanted


def rank_of(state: Leadership, me: str) -> int:
    """My position among the members the last lease listed (unknown workers go last)."""
    ids: list[str] = sorted(
        m.worker_id for m in state.members if state.leader is None or m != state.leader
    )
    return ids.index(me) if me in ids else len(ids)


def claimed(state: Leadership, term: int, now: float) -> Leadership:
    """Remember that this worker claimed ``term`` at ``now`` (so it does not re-claim at once)."""
    return msgspec.structs.replace(state, claimed_term=term, claimed_at=now)
