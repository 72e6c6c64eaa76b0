"""The process runtime's restart policy (fnworker/runtimes/process/restart_policy.py):
pure, with the start and end of a run as inputs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fnworker.runtimes.process.restart_policy import RestartDecision, RestartPolicy, after_crash

POLICY = RestartPolicy()


def test_crash_loop_backs_off_doubling_up_to_the_cap() -> None:
    failures, delays, now = 0, [], 1000.0
    for _ in range(9):
        decision = after_crash(failures, now, now + 1.0, POLICY)
        failures, now = decision.failures, now + 1.0 + decision.delay_seconds
        delays.append(decision.delay_seconds)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert failures == 9


def test_a_long_enough_run_forgives_earlier_crashes() -> None:
    stable = after_crash(7, 100.0, 100.0 + POLICY.stable_after_seconds, POLICY)
    assert stable == RestartDecision(failures=1, delay_seconds=0.5)
    short = after_crash(7, 100.0, 100.0 + POLICY.stable_after_seconds - 0.001, POLICY)
    assert short == RestartDecision(failures=8, delay_seconds=30.0)


def test_only_the_run_length_matters_not_the_clock_origin() -> None:
    assert after_crash(2, 0.0, 3.0, POLICY) == after_crash(2, 5e6, 5e6 + 3.0, POLICY)


@given(
    st.integers(min_value=0, max_value=1000),
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=0, max_value=1e3),
)
def test_the_delay_is_within_the_policy_bounds(previous: int, started: float, ran: float) -> None:
    decision = after_crash(previous, started, started + ran, POLICY)
    assert decision.failures in (1, previous + 1)
    assert POLICY.initial_delay_seconds <= decision.delay_seconds <= POLICY.max_delay_seconds
