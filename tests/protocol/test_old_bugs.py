"""The scenarios of the three fleet bugs fail against the old logic: each test puts
the old decision back into the pure protocol (monkeypatch, for this test only)
and checks that its scenario then fails, on the expectation that names the bug.

- 42c9607: take-office waited inside the coordinate reader that delivers the
  members' reports; the report window always timed out and the new leader planned
  from an empty table (scenarios/leader_death.txt, ``expect unmoved``).
- a1dc518: a worker woken from a freeze fenced itself but its claim loop took the
  unread leases it slept through for a silent leader and claimed, usurping the
  live leader (scenarios/woken_worker_does_not_usurp.txt, ``expect leader=w1``).
- issue 15 point 2: a move off a worker stopping gracefully (SIGTERM) unassigned
  the instance there at once, before its new owner ran it
  (scenarios/handoff_keeps_running.txt, ``expect owner``).
- 02ffb69 (throw-away readers on a function's input topic) is not protocol-level:
  it lives in the runtimes' consumer-id spreader, which the protocol never touches.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec
import pytest

from fnworker.coordination.protocol import office, reading, timers
from fnworker.coordination.protocol.messages import Send
from fnworker.coordination.protocol.state import NodeState, Result, leads
from fnworker.coordination.wire import Report
from fnworker.scheduler.model.records import Assignment, InstanceId
from tests.protocol.script import Runner, ScenarioFailed

SCENARIOS = Path(__file__).parent / "scenarios"


def test_the_scenarios_pass_with_todays_logic() -> None:
    Runner().run(SCENARIOS / "leader_death.txt")
    Runner().run(SCENARIOS / "woken_worker_does_not_usurp.txt")
    Runner().run(SCENARIOS / "handoff_keeps_running.txt")


def test_leader_death_fails_when_take_office_blocks_the_reader_of_the_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Old logic: while the office was pending, the coordinate reader was stuck inside
    it, so no report counted; the office was taken when the window ran out, from an
    empty table, and the worker's planning pass (another task) ran before the reader
    got to the reports, which then arrived as late reports."""
    blocked: dict[str, list[Report]] = {}
    read_report, tick = reading.on_report, timers.on_tick

    def report_behind_blocked_reader(state: NodeState, report: Report, now: float) -> Result:
        office = state.office
        if office is not None and office.term == report.term:
            if not office.ready or blocked.get(state.me.worker_id):
                blocked.setdefault(state.me.worker_id, []).append(report)
                return state, []
        return read_report(state, report, now)

    def reader_resumes_after_the_plan(state: NodeState, now: float) -> Result:
        led_before = leads(state)
        state, outputs = tick(state, now)
        if led_before and leads(state):
            for report in blocked.pop(state.me.worker_id, []):
                state, more = read_report(state, report, now)
                outputs += more
        return state, outputs

    monkeypatch.setattr(reading, "on_report", report_behind_blocked_reader)
    monkeypatch.setattr(timers, "on_tick", reader_resumes_after_the_plan)
    monkeypatch.setattr(
        "fnworker.coordination.protocol.node.on_tick", reader_resumes_after_the_plan
    )
    with pytest.raises(ScenarioFailed, match=r"leader_death.txt:\d+: expect unmoved"):
        Runner().run(SCENARIOS / "leader_death.txt")


def test_a_woken_worker_usurps_when_only_its_heartbeat_loop_sees_the_freeze(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Old logic: the freeze fenced the worker (heartbeat loop) but did not make it
    hear the leader afresh, and the claim check ran as on any tick."""

    def old_tick(state: NodeState, now: float) -> Result:
        frozen_for = now - state.last_tick
        state = msgspec.structs.replace(state, last_tick=now)
        outputs: list = []  # type: ignore[type-arg]
        if frozen_for > state.timings.dead_timeout:
            fenced, outputs = timers.fence_self(state, frozen_for, now)
            state = msgspec.structs.replace(fenced, leadership=state.leadership)
        if now >= state.next_heartbeat_at:
            state, beat = timers.heartbeat(state, now)
            outputs.append(beat)
        if leads(state):
            state, led = timers.leader_tick(state, now)
            return state, outputs + led
        return timers.claim_if_due(state, now, outputs)

    monkeypatch.setattr(timers, "on_tick", old_tick)
    monkeypatch.setattr("fnworker.coordination.protocol.node.on_tick", old_tick)
    with pytest.raises(ScenarioFailed, match=r"usurp.txt:\d+: expect leader=w1 term=1"):
        Runner().run(SCENARIOS / "woken_worker_does_not_usurp.txt")


def test_hand_off_fails_when_a_moved_instance_is_unassigned_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 15 point 2, old logic: a move off a worker stopping gracefully unassigned
    the instance there at once, so it stopped before its new owner ran it."""
    publish = office.publish

    def unassign_at_once(
        leading: office.Office, assigned: Iterable[Assignment], unassigned: Iterable[InstanceId]
    ) -> tuple[office.Office, list[Send]]:
        nobody_hands_off = msgspec.structs.replace(leading, handing=frozenset())
        published, sends = publish(nobody_hands_off, assigned, unassigned)
        return msgspec.structs.replace(published, handing=leading.handing), sends

    monkeypatch.setattr(office, "publish", unassign_at_once)
    with pytest.raises(ScenarioFailed, match=r"handoff_keeps_running.txt:\d+: expect owner"):
        Runner().run(SCENARIOS / "handoff_keeps_running.txt")
