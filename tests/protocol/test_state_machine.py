"""Random schedules against the pure protocol (Hypothesis state machine over the
simulated fleet of tests/protocol/sim.py): workers start, die, stop, restart,
hand their instances off (a graceful stop; a new owner's runtime may be slow to
run what it was handed), freeze and thaw, lose the broker, have a reader stall
or their heartbeats lost, while time passes with or without deliveries.

Safety, checked on every step by the simulation itself:
- at most one worker ever leads a term (``Sim.check_one_leader``);
- no worker applies an assignment record of a term older than one it has learned
  (``Sim.on_event``), and only a term's leader writes assignments (``Sim.store``);
- no leader's automatic rebalance moves an instance it moved within the cooldown
  (``Sim.publish_changes``; the leaders run the shipped rebalance settings).
Once quiet (every fault healed, every message delivered, time passed): every
instance is held by exactly one running worker (``Sim.check_quiet``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from tests.protocol.sim import Sim

NAMES = ("w1", "w2", "w3", "w4")
TOPIC_KINDS = ("coordinate", "heartbeats", "assignments")
QUIET_SECONDS = 6.0
"""Long enough for a fenced worker to come back, a dead timeout, a claim, a take-over."""


class FleetSchedules(RuleBasedStateMachine):
    """One random schedule of faults and time on a fleet of up to four workers."""

    def __init__(self) -> None:
        super().__init__()
        self.sim = Sim()

    @initialize(count=st.integers(1, 3), parallelism=st.integers(1, 4))
    def start_fleet(self, count: int, parallelism: int) -> None:
        for name in NAMES[:count]:
            self.sim.start(name)
        self.sim.advance(1.0)
        self.sim.add_function("f", parallelism)

    @rule(name=st.sampled_from(NAMES))
    def start(self, name: str) -> None:
        if name not in self.sim.workers:
            self.sim.start(name)

    @rule(name=st.sampled_from(NAMES), clean=st.booleans())
    def kill_or_stop(self, name: str, clean: bool) -> None:
        worker = self.sim.workers.get(name)
        if worker is not None and not (clean and (worker.frozen or name in self.sim.cut)):
            (self.sim.stop if clean else self.sim.kill)(name)

    @rule(name=st.sampled_from(NAMES))
    def hand_off(self, name: str) -> None:
        worker = self.sim.workers.get(name)
        if worker is not None and not worker.frozen:
            self.sim.hand_off(name)

    @rule(name=st.sampled_from(NAMES))
    def delay_runtime(self, name: str) -> None:
        self.sim.delayed.add((name, "runtime"))

    @rule(name=st.sampled_from(NAMES))
    def restart(self, name: str) -> None:
        if name in self.sim.workers:
            self.sim.kill(name)
        self.sim.start(name)

    @rule(name=st.sampled_from(NAMES), frozen=st.booleans())
    def freeze_or_thaw(self, name: str, frozen: bool) -> None:
        if name in self.sim.workers:
            self.sim.workers[name].frozen = frozen

    @rule(name=st.sampled_from(NAMES))
    def partition(self, name: str) -> None:
        if name in self.sim.workers:
            self.sim.partition([name])

    @rule()
    def heal(self) -> None:
        self.sim.heal()

    @rule(name=st.sampled_from(NAMES), kind=st.sampled_from(TOPIC_KINDS))
    def delay_reader(self, name: str, kind: str) -> None:
        self.sim.delayed.add((name, kind))

    @rule(name=st.sampled_from(NAMES))
    def lose_heartbeats(self, name: str) -> None:
        self.sim.dropped.add((name, "heartbeats"))

    @rule()
    def release_all(self) -> None:
        self.sim.delayed.clear()
        self.sim.dropped.clear()

    @rule(parallelism=st.integers(1, 5))
    def change_function(self, parallelism: int) -> None:
        self.sim.add_function("f", parallelism)

    @rule(
        milliseconds=st.sampled_from((25, 50, 100, 200, 400, 700, 1200, 2000)),
        deliver=st.booleans(),
    )
    def advance(self, milliseconds: int, deliver: bool) -> None:
        self.sim.advance(milliseconds / 1000, deliver=deliver)

    @rule()
    def deliver(self) -> None:
        self.sim.deliver_all()

    @precondition(lambda self: bool(self.sim.workers))
    @rule()
    def quiet(self) -> None:
        """Heal every fault, let time pass with every message delivered, then check."""
        sim = self.sim
        sim.heal()
        sim.delayed.clear()
        sim.dropped.clear()
        for worker in sim.workers.values():
            worker.frozen = False
        sim.advance(QUIET_SECONDS)
        sim.check_quiet()

    def teardown(self) -> None:
        if self.sim.workers:
            self.quiet()


TestFleetSchedules = FleetSchedules.TestCase
TestFleetSchedules.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
