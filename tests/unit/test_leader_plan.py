"""The leader's incremental plan equals the plan from nothing, over random change
sequences (functions registered, updated, deleted; workers joining, lost, drained;
new terms; tables changed behind the planner's back; refused publishes; rebalances).

``LeaderPlanner`` is what the leader runs; ``plan_assignments`` and
``plan_rebalance_records`` are the reference semantics. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fnworker.scheduler.decide.assignment_plan import (
    AssignmentChanges,
    plan_assignments,
    plan_rebalance_records,
)
from fnworker.scheduler.decide.leader_plan import LeaderPlanner
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    InstanceId,
    Resources,
    WorkerId,
)

NAMES = [f"f{i}" for i in range(6)]
WORKER_POOL = [WorkerId(f"w{i}") for i in range(5)]
CPUS = [1.0, 0.5, 2.0]


def function(name: str, version: int, parallelism: int, cpu: float) -> FunctionRecord:
    resources = None if cpu == 1.0 else Resources(cpu=cpu)
    return FunctionRecord(
        fqfn=Fqfn(f"t/n/{name}"),
        version=version,
        config=FunctionConfig(parallelism=parallelism, resources=resources),
    )


def applied(
    table: Mapping[InstanceId, Assignment], changes: AssignmentChanges
) -> dict[InstanceId, Assignment]:
    """The table after a backend applies ``changes`` (unassigned first, as both do)."""
    result = dict(table)
    for instance in changes.unassigned:
        result.pop(instance, None)
    result.update((a.instance, a) for a in changes.assigned)
    return result


def same(got: AssignmentChanges, expected: AssignmentChanges) -> None:
    """The two plans write the same records for the same reasons."""
    assert {a.instance: a for a in got.assigned} == {a.instance: a for a in expected.assigned}
    assert len(got.assigned) == len(expected.assigned)
    assert sorted(got.unassigned) == sorted(expected.unassigned)
    key = lambda m: (m.instance, m.source or "", m.target or "", m.reason)  # noqa: E731
    assert sorted(map(key, got.moves)) == sorted(map(key, expected.moves))
    assert sorted(got.updated) == sorted(expected.updated)
    assert got.reason_counts() == expected.reason_counts()


EVENTS = st.one_of(
    st.tuples(
        st.just("register"),
        st.sampled_from(NAMES),
        st.integers(1, 6),
        st.sampled_from(CPUS),
    ),
    st.tuples(
        st.just("update"),
        st.sampled_from(NAMES),
        st.one_of(st.none(), st.integers(1, 6)),
        st.one_of(st.none(), st.sampled_from(CPUS)),
    ),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("join"), st.sampled_from(WORKER_POOL)),
    st.tuples(st.just("lose"), st.lists(st.sampled_from(WORKER_POOL), min_size=1, max_size=3)),
    st.tuples(st.just("drain"), st.sampled_from(WORKER_POOL)),
    st.tuples(st.just("term")),
    st.tuples(st.just("tamper"), st.integers(0, 50)),
    st.tuples(st.just("refuse")),
    st.tuples(st.just("rebalance")),
)


class Fleet:
    """The inputs of the leader's pass, changed one event at a time."""

    def __init__(self, workers: list[WorkerId]) -> None:
        self.functions: dict[Fqfn, FunctionRecord] = {}
        self.members = list(workers)
        self.drained: set[str] = set()
        self.term = 1
        self.table: dict[InstanceId, Assignment] = {}

    def workers(self) -> list[WorkerId]:
        """The members that may receive instances (as ``LeaderControl.eligible``)."""
        return [w for w in self.members if w not in self.drained]

    def apply(self, event: tuple[object, ...]) -> None:
        """Change the inputs as the event says (the plan events are handled by the test)."""
        kind = event[0]
        if kind == "register":
            _, name, parallelism, cpu = event
            fqfn = Fqfn(f"t/n/{name}")
            if fqfn not in self.functions:
                self.functions[fqfn] = function(str(name), 1, int(parallelism), float(cpu))  # type: ignore[call-overload]
        elif kind == "update":
            _, name, parallelism, cpu = event
            old = self.functions.get(Fqfn(f"t/n/{name}"))
            if old is not None:
                config = old.config
                if parallelism is not None:
                    config = msgspec.structs.replace(config, parallelism=parallelism)
                if cpu is not None:
                    config = msgspec.structs.replace(
                        config, resources=None if cpu == 1.0 else Resources(cpu=cpu)
                    )
                self.functions[old.fqfn] = msgspec.structs.replace(
                    old, version=old.version + 1, config=config
                )
        elif kind == "delete":
            self.functions.pop(Fqfn(f"t/n/{event[1]}"), None)
        elif kind == "join":
            if event[1] not in self.members:
                self.members.append(WorkerId(str(event[1])))
        elif kind == "lose":  # one liveness sweep may find several workers dead
            for worker in event[1]:  # type: ignore[attr-defined]
                if worker in self.members:
                    self.members.remove(worker)
                self.drained.discard(worker)
        elif kind == "drain":
            if event[1] in self.members and len(self.workers()) > 1:
                self.drained.add(str(event[1]))
        elif kind == "term":
            self.term += 1
        elif kind == "tamper" and self.table:
            # A late report or a take-office rebuild: one entry differs from the plan.
            instance = sorted(self.table)[int(event[1]) % len(self.table)]  # type: ignore[call-overload]
            if int(event[1]) % 2:  # type: ignore[call-overload]
                del self.table[instance]
            else:
                other = WORKER_POOL[int(event[1]) % len(WORKER_POOL)]  # type: ignore[call-overload]
                self.table[instance] = msgspec.structs.replace(self.table[instance], worker=other)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["roundrobin", "leastloaded"]),
    st.lists(st.sampled_from(WORKER_POOL), unique=True, min_size=1, max_size=5),
    st.lists(
        st.tuples(st.sampled_from(NAMES), st.integers(1, 6), st.sampled_from(CPUS)),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.tuples(EVENTS, st.booleans()), max_size=30),
)
def test_incremental_plan_equals_the_plan_from_nothing(
    strategy: str,
    workers: list[WorkerId],
    initial: list[tuple[str, int, float]],
    events: list[tuple[tuple[object, ...], bool]],
) -> None:
    """Every pass of the planner writes exactly what ``plan_assignments`` writes. An
    event with ``coalesced`` set is applied without a pass (the leader's wake-ups
    coalesce, so one pass may see several workers lost and functions changed)."""
    fleet = Fleet(workers)
    for name, parallelism, cpu in initial:
        fleet.apply(("register", name, parallelism, cpu))
    planner = LeaderPlanner()
    for event, coalesced in [*events, (("plan",), False)]:
        fleet.apply(event)
        if coalesced and event[0] not in ("refuse", "rebalance"):
            continue
        args = (fleet.workers(), fleet.table, fleet.term, strategy)
        expected = plan_assignments(fleet.functions, *args, drained=fleet.drained)
        got = planner.plan(fleet.functions, *args, drained=fleet.drained)
        same(got, expected)
        if event[0] == "refuse":
            continue  # the backend refused the publish: the table stays as it was
        fleet.table = applied(fleet.table, got)
        if event[0] == "rebalance":
            expected = plan_rebalance_records(fleet.table, *args[:1], fleet.term, strategy)
            got = planner.rebalance(fleet.workers(), fleet.table, fleet.term, strategy)
            same(got, expected)
            fleet.table = applied(fleet.table, got)


def test_a_lost_worker_is_planned_from_the_index_not_from_nothing() -> None:
    """After the first pass, losing a worker re-plans only from what changed."""
    functions = {f.fqfn: f for f in (function(n, 1, 4, 1.0) for n in NAMES)}
    planner = LeaderPlanner()
    first = planner.plan(functions, WORKER_POOL, {}, 1, "roundrobin")
    table = applied({}, first)
    survivors = WORKER_POOL[1:]
    got = planner.plan(functions, survivors, table, 1, "roundrobin", drained={"w0"})
    same(got, plan_assignments(functions, survivors, table, 1, "roundrobin", drained={"w0"}))
    assert planner.full_plans == 1
    held = {i for i, a in table.items() if a.worker == "w0"}
    assert {m.instance for m in got.moves} == held
    assert got.reason_counts() == {"drain": len(held)}


def test_a_changed_cpu_counts_in_the_next_placement() -> None:
    """Least-loaded: an update's new cpu changes its worker's load at once, as a fresh
    plan counts it, although the instance itself does not move."""
    workers = [WorkerId("w0"), WorkerId("w1")]
    heavy, light = function("f0", 1, 1, 2.0), function("f1", 1, 1, 0.5)
    planner = LeaderPlanner()
    functions = {heavy.fqfn: heavy, light.fqfn: light}
    table = applied({}, planner.plan(functions, workers, {}, 1, "leastloaded"))
    functions[heavy.fqfn] = function("f0", 2, 1, 0.25)
    table = applied(table, planner.plan(functions, workers, table, 1, "leastloaded"))
    extra = function("f2", 1, 1, 1.0)
    functions[extra.fqfn] = extra
    got = planner.plan(functions, workers, table, 1, "leastloaded")
    same(got, plan_assignments(functions, workers, table, 1, "leastloaded"))
    assert planner.full_plans == 1
