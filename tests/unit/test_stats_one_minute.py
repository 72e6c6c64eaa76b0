"""The ``1min`` block of an instance's stats (runtimes/instance/stats.py): a sliding
minute measured in 5-second marks, driven the way the message loop drives it (a mark
when due, before the message is counted), with the read time given; and the function's
``1min`` aggregated as Pulsar's FunctionStatsImpl does it."""

from __future__ import annotations

import msgspec

from fnworker.runtimes.instance.stats import MARK_SECONDS, InstanceStats
from fnworker.runtimes.process.control import MetricsReply
from fnworker.scheduler.decide.status_view import function_stats
from fnworker.scheduler.model.instances import InstanceMetrics, WindowMetrics


def started() -> tuple[InstanceStats, float]:
    """Fresh stats and the perf_counter time they started at."""
    stats = InstanceStats()
    return stats, stats.next_mark - MARK_SECONDS


def handle(
    stats: InstanceStats, at: float, *, latency_ms: float = 1.0, fails: bool = False
) -> None:
    """One message as the message loop counts it at time ``at``."""
    if at >= stats.next_mark:
        stats.mark(at)
    stats.received += 1
    if fails:
        stats.record_user_exception(ValueError("bad"))
        return
    stats.latency_total_ms += latency_ms
    stats.latency_count += 1
    stats.add_processed(1)


def test_within_the_first_minute_the_window_holds_everything() -> None:
    stats, t0 = started()
    for i in range(10):
        handle(stats, t0 + 20 + i * 0.01)
    window = stats.metrics(now=t0 + 30).one_minute
    assert window == WindowMetrics(
        received_total=10,
        processed_successfully_total=10,
        system_exceptions_total=0,
        user_exceptions_total=0,
        avg_process_latency=1.0,
    )


def test_messages_leave_the_window_a_minute_after_they_arrived() -> None:
    stats, t0 = started()
    for i in range(10):
        handle(stats, t0 + 20 + i * 0.01)
    assert stats.metrics(now=t0 + 75).one_minute.received_total == 10
    gone = stats.metrics(now=t0 + 85).one_minute
    assert (gone.received_total, gone.processed_successfully_total) == (0, 0)
    assert gone.avg_process_latency is None
    assert stats.metrics(now=t0 + 85).received_total == 10


def test_the_window_slides_instead_of_falling_to_zero() -> None:
    """One message a second for three minutes: every read after the first minute sees
    55 to 60 of them (Pulsar's tumbling counters would read 0 right after a reset)."""
    stats, t0 = started()
    for second in range(180):
        handle(stats, t0 + second + 0.5)
        if second >= 60:
            seen = stats.metrics(now=t0 + second + 0.6).one_minute.received_total
            assert 55 <= seen <= 60, (second, seen)


def test_latency_and_exceptions_are_those_of_the_last_minute() -> None:
    stats, t0 = started()
    for i in range(5):
        handle(stats, t0 + 1 + i, latency_ms=100.0)
    for i in range(5):
        handle(stats, t0 + 70 + i, latency_ms=10.0)
    handle(stats, t0 + 80, fails=True)
    window = stats.metrics(now=t0 + 90).one_minute
    assert (window.received_total, window.processed_successfully_total) == (6, 5)
    assert (window.user_exceptions_total, window.avg_process_latency) == (1, 10.0)
    assert stats.metrics(now=t0 + 90).avg_process_latency == 55.0


def test_reads_alone_keep_the_window_when_no_message_arrives() -> None:
    stats, t0 = started()
    handle(stats, t0 + 1)
    for second in range(2, 200, 7):
        stats.metrics(now=t0 + second)
    assert stats.metrics(now=t0 + 200).one_minute.received_total == 0


def test_a_reset_empties_the_window() -> None:
    stats, t0 = started()
    handle(stats, t0 + 1)
    stats.reset()
    assert stats.metrics().one_minute == WindowMetrics()


def test_the_json_key_is_1min_in_pulsars_order() -> None:
    stats, t0 = started()
    handle(stats, t0 + 1)
    encoded = msgspec.json.encode(stats.metrics(now=t0 + 2))
    keys = list(msgspec.json.decode(encoded))
    assert keys[:8] == [
        "receivedTotal",
        "processedSuccessfullyTotal",
        "systemExceptionsTotal",
        "userExceptionsTotal",
        "avgProcessLatency",
        "1min",
        "lastInvocation",
        "userMetrics",
    ]
    assert msgspec.json.decode(encoded)["1min"]["receivedTotal"] == 1


def test_the_window_crosses_the_process_control_channel_and_the_pod_json() -> None:
    """The process runtime's MetricsReply (msgpack) and the pod's /stats (JSON) carry it."""
    metrics = InstanceMetrics(received_total=3, one_minute=WindowMetrics(received_total=2))
    reply = msgspec.msgpack.decode(
        msgspec.msgpack.encode(MetricsReply(metrics=metrics)), type=MetricsReply
    )
    assert reply.metrics.one_minute.received_total == 2
    pod = msgspec.json.decode(msgspec.json.encode(metrics), type=InstanceMetrics)
    assert pod.one_minute.received_total == 2


def test_the_functions_1min_sums_counts_and_averages_latency_as_pulsar() -> None:
    """FunctionStatsImpl.calculateOverall: counts summed, the latency the plain mean of
    the instances that report one (not weighted by messages), None when none does."""
    busy = InstanceMetrics(
        received_total=100,
        processed_successfully_total=100,
        avg_process_latency=2.0,
        one_minute=WindowMetrics(
            received_total=10, processed_successfully_total=9, avg_process_latency=4.0
        ),
    )
    quiet = InstanceMetrics(
        received_total=1,
        processed_successfully_total=1,
        avg_process_latency=8.0,
        one_minute=WindowMetrics(received_total=0),
    )
    other = InstanceMetrics(
        one_minute=WindowMetrics(received_total=2, user_exceptions_total=2, avg_process_latency=6.0)
    )
    stats = function_stats([busy, quiet, other])
    assert stats.one_minute == WindowMetrics(
        received_total=12,
        processed_successfully_total=9,
        system_exceptions_total=0,
        user_exceptions_total=2,
        avg_process_latency=5.0,
    )
    assert (stats.received_total, stats.avg_process_latency) == (101, 5.0)
    assert function_stats([InstanceMetrics()]).one_minute.avg_process_latency is None
    assert list(msgspec.json.decode(msgspec.json.encode(stats)))[5] == "1min"
