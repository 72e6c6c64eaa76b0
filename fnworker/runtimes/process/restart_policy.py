"""When to restart a crashed instance process: exponential backoff that a long
enough run forgives. Pure; time comes in as arguments, nothing reads a clock."""

from __future__ import annotations

import msgspec


class RestartPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Crash restarts: ``initial`` s, doubling up to ``maximum`` s; a run of at least
    ``stable_after`` s forgives earlier crashes."""

    initial_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    stable_after_seconds: float = 60.0


class RestartDecision(msgspec.Struct, frozen=True, kw_only=True):
    """What follows one crash: how many crashes in a row that makes, and the wait."""

    failures: int
    delay_seconds: float


def restart_delay(failures: int, policy: RestartPolicy) -> float:
    """Seconds to wait before the restart that follows ``failures`` crashes in a row."""
    doublings = min(max(failures - 1, 0), 30)
    return float(min(policy.max_delay_seconds, policy.initial_delay_seconds * 2**doublings))


def failures_in_a_row(previous: int, ran_for: float, policy: RestartPolicy) -> int:
    """Crashes in a row after one more crash that followed ``ran_for`` s of running."""
    return 1 if ran_for >= policy.stable_after_seconds else previous + 1


def after_crash(
    previous_failures: int, started_at: float, ended_at: float, policy: RestartPolicy
) -> RestartDecision:
    """The decision after a process that started at ``started_at`` ended at ``ended_at``
    (seconds on any one monotonic clock) with ``previous_failures`` crashes before it."""
    failures = failures_in_a_row(previous_failures, ended_at - started_at, policy)
    return RestartDecision(failures=failures, delay_seconds=restart_delay(failures, policy))
