"""When the leader evens out the fleet by itself, and which instances move. Pure: no
I/O, no clock (time is the ``now`` argument), frozen records in and out.

Two triggers start a check: a worker joins (or returns), unless ``on_join`` is off
(reason ``join``), and ``check_every_s`` passing since the last periodic check
(Pulsar's ``rebalanceCheckFreqSec``; reason ``rebalance``). A check owed stays owed
until a pass finds the fleet balanced enough; the leader asks for the next pass at
``RebalanceDecision.wake_at``. Guards against thrashing when workers flap:

* a joined worker gets instances only once it has been live for ``settle_s``;
* hysteresis: nothing moves unless the busiest and idlest settled workers differ by
  at least ``min_spread`` instances and by at least ``min_ratio`` of the busiest;
* passes that move something are at least ``min_interval_s`` apart;
* at most ``max_moves`` moves per pass;
* an instance that left a worker (for any reason) less than ``cooldown_s`` ago is
  not moved by a rebalance.

Instance counts are evened out (as the operator's rebalance does), with the fewest
moves: only the surplus above each worker's fair share moves.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from itertools import repeat
from typing import Literal

import msgspec

from fnworker.scheduler.decide.placement import Move
from fnworker.scheduler.settings.worker_config import WorkerConfig

AutoReason = Literal["join", "rebalance"]
Triple = tuple[str, str, str]
"""(instance, source worker, target worker)."""
COOLED_MARGIN_S = 0.05
"""How long after the first instance cools the next look comes (never at ``now``
itself: a pass that moves nothing must not ask to run again at once)."""


class RebalancePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The automatic rebalance settings (config/functions_worker.yml documents each)."""

    on_join: bool = True
    check_every_s: float = 600.0
    """Periodic check interval; 0 or less: no periodic check."""
    min_spread: int = 2
    min_ratio: float = 0.2
    min_interval_s: float = 2.0
    max_moves: int = 100
    cooldown_s: float = 30.0
    settle_s: float = 2.0


class RebalanceMemory(msgspec.Struct, frozen=True, kw_only=True):
    """What the leader remembers between passes (its maps are never changed once made)."""

    seen_since: Mapping[str, float] = msgspec.field(default_factory=dict)
    """Each live worker -> since when it has been live without a gap."""
    moved_at: Mapping[str, float] = msgspec.field(default_factory=dict)
    """Instance -> when it last left a worker (kept for ``cooldown_s``)."""
    last_pass_at: float = -math.inf
    """When a rebalance last moved something."""
    last_check_at: float | None = None
    """When the periodic check last ran (None: not started)."""
    owed: AutoReason | None = None
    """A check that is due and not yet done."""


class RebalanceDecision(msgspec.Struct, frozen=True, kw_only=True):
    """One pass's verdict: the moves (none, or all with ``reason``), the memory to keep,
    and when the next pass is wanted (None: only when something changes)."""

    moves: tuple[Triple, ...] = ()
    reason: AutoReason | None = None
    memory: RebalanceMemory
    wake_at: float | None = None


def policy_of(config: WorkerConfig) -> RebalancePolicy:
    """The policy the worker's configuration asks for."""
    return RebalancePolicy(
        on_join=config.rebalance_on_join_enabled,
        check_every_s=float(config.rebalance_check_freq_sec),
        min_spread=config.rebalance_min_spread,
        min_ratio=config.rebalance_min_imbalance_ratio,
        min_interval_s=config.rebalance_min_interval_ms / 1000,
        max_moves=config.rebalance_max_moves_per_pass,
        cooldown_s=config.rebalance_move_cooldown_ms / 1000,
        settle_s=config.rebalance_join_settle_ms / 1000,
    )


def observe_workers(
    policy: RebalancePolicy, memory: RebalanceMemory, workers: Iterable[str], now: float
) -> RebalanceMemory:
    """Note who is live now: a worker not live at the last look has joined (a check
    is owed, reason ``join``, when ``on_join``); a gone worker is forgotten. The first
    look starts the periodic clock."""
    live = dict.fromkeys(workers)
    seen = memory.seen_since
    joined = [worker for worker in live if worker not in seen]
    if not joined and len(live) == len(seen):
        return memory if memory.last_check_at is not None else _started(memory, now)
    since = {worker: seen.get(worker, now) for worker in live}
    owed = memory.owed
    if joined and policy.on_join:
        owed = "join"
    return _started(msgspec.structs.replace(memory, seen_since=since, owed=owed), now)


def _started(memory: RebalanceMemory, now: float) -> RebalanceMemory:
    """``memory`` with its periodic clock started at ``now`` if it was not."""
    if memory.last_check_at is not None:
        return memory
    return msgspec.structs.replace(memory, last_check_at=now)


def note_moves(memory: RebalanceMemory, moves: Iterable[Move], now: float) -> RebalanceMemory:
    """Remember when each instance left a worker (placements and drops are not moves)."""
    left = [move.instance for move in moves if move.source is not None and move.target]
    if not left:
        return memory
    moved_at = dict(memory.moved_at)
    moved_at.update(zip(left, repeat(now)))
    return msgspec.structs.replace(memory, moved_at=moved_at)


def decide_rebalance(
    policy: RebalancePolicy,
    memory: RebalanceMemory,
    members: Mapping[str, Collection[str]],
    now: float,
) -> RebalanceDecision:
    """The moves of this pass (``members``: each live worker's instances) and when to
    look again. Cost O(W log W) plus the donors' instances when a check runs, O(1)
    when none is owed."""
    periodic_at = _periodic_due(policy, memory)
    owed = memory.owed
    if owed is None and periodic_at is not None and now >= periodic_at:
        owed = "rebalance"
        memory = msgspec.structs.replace(memory, last_check_at=now, owed=owed)
        periodic_at = _periodic_due(policy, memory)
    if owed is None:
        return RebalanceDecision(memory=memory, wake_at=periodic_at)
    not_before = memory.last_pass_at + policy.min_interval_s
    if now < not_before:
        return RebalanceDecision(memory=memory, wake_at=_soonest(not_before, periodic_at))
    unsettled = [
        since + policy.settle_s
        for worker, since in memory.seen_since.items()
        if worker in members and since + policy.settle_s > now
    ]
    if unsettled:
        return RebalanceDecision(memory=memory, wake_at=_soonest(min(unsettled), periodic_at))
    moved_at = _fresh(memory.moved_at, now - policy.cooldown_s)
    balanced = not imbalanced(policy, [len(held) for held in members.values()])
    needed, moves = (0, []) if balanced else even_out(members, moved_at, policy.max_moves)
    if not needed:
        done = msgspec.structs.replace(memory, owed=None, moved_at=moved_at)
        return RebalanceDecision(memory=done, wake_at=periodic_at)
    if not moves:
        # Everything that could move is cooling down: look again when the first cools.
        first_cooled = min(moved_at.values(), default=now) + policy.cooldown_s
        cooled = max(first_cooled, now) + COOLED_MARGIN_S
        kept = msgspec.structs.replace(memory, moved_at=moved_at)
        return RebalanceDecision(memory=kept, wake_at=_soonest(cooled, periodic_at))
    stamped = dict(moved_at)
    stamped.update((instance, now) for instance, _, _ in moves)
    unfinished = len(moves) < needed
    after = msgspec.structs.replace(
        memory, moved_at=stamped, last_pass_at=now, owed=owed if unfinished else None
    )
    wake_at = _soonest(now + policy.min_interval_s, periodic_at) if unfinished else periodic_at
    return RebalanceDecision(moves=tuple(moves), reason=owed, memory=after, wake_at=wake_at)


def check_owed(policy: RebalancePolicy, memory: RebalanceMemory, now: float) -> bool:
    """True when ``decide_rebalance`` has work at ``now``: a check is owed or the
    periodic one is due (else it would only return ``periodic_check_at``). O(1)."""
    due = _periodic_due(policy, memory)
    return memory.owed is not None or (due is not None and now >= due)


def periodic_check_at(policy: RebalancePolicy, memory: RebalanceMemory) -> float | None:
    """When the next periodic check is due (None: off or not started)."""
    return _periodic_due(policy, memory)


def imbalanced(policy: RebalancePolicy, counts: Collection[int]) -> bool:
    """True when the busiest and idlest worker differ enough to be worth moving
    instances (the hysteresis: at least ``min_spread`` and ``min_ratio`` of the busiest)."""
    if len(counts) < 2:
        return False
    busiest, idlest = max(counts), min(counts)
    spread = busiest - idlest
    return spread >= max(policy.min_spread, 1) and spread >= policy.min_ratio * busiest


def even_out(
    members: Mapping[str, Collection[str]], moved_at: Mapping[str, float], cap: int
) -> tuple[int, list[Triple]]:
    """(moves a full balance needs, at most ``cap`` of them that avoid cooling
    instances). Fair shares as the operator's rebalance: with T instances on W workers
    the ``T % W`` fullest (ties: smaller id) keep ``T // W + 1``, the others
    ``T // W``; surplus leaves each donor from its largest instance ids that are not
    cooling down, and fills recipients emptiest first (ties: smaller id)."""
    ranked = sorted(members, key=lambda worker: (-len(members[worker]), worker))
    base, extra = divmod(sum(len(members[worker]) for worker in ranked), len(ranked))
    shares = {worker: base + (rank < extra) for rank, worker in enumerate(ranked)}
    needed = sum(max(0, len(members[w]) - shares[w]) for w in ranked)
    donations: list[tuple[str, str]] = []
    for worker in ranked:
        surplus = len(members[worker]) - shares[worker]
        if surplus <= 0:
            continue
        movable = sorted((i for i in members[worker] if i not in moved_at), reverse=True)
        donations.extend((instance, worker) for instance in movable[:surplus])
    recipients = sorted(
        (w for w in ranked if len(members[w]) < shares[w]), key=lambda w: (len(members[w]), w)
    )
    slots = (
        w for worker in recipients for w in repeat(worker, shares[worker] - len(members[worker]))
    )
    moves = [
        (instance, source, target)
        for (instance, source), target in zip(donations, slots, strict=False)
    ]
    return needed, moves[: max(cap, 0)]


def _periodic_due(policy: RebalancePolicy, memory: RebalanceMemory) -> float | None:
    """When the next periodic check is due (None: off or not started)."""
    if policy.check_every_s <= 0 or memory.last_check_at is None:
        return None
    return memory.last_check_at + policy.check_every_s


def _fresh(moved_at: Mapping[str, float], since: float) -> Mapping[str, float]:
    """``moved_at`` without the moves older than ``since`` (the same map if none is)."""
    if all(at > since for at in moved_at.values()):
        return moved_at
    return {instance: at for instance, at in moved_at.items() if at > since}


def _soonest(first: float, second: float | None) -> float:
    """The earlier of two times (``second`` may be absent)."""
    return first if second is None else min(first, second)
