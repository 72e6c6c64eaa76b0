"""Counters of one running instance (Pulsar's FunctionStats) and their snapshots as
InstanceStatusData and InstanceMetrics. No I/O.

The instance thread writes plain integer attributes (cheap, atomic under the GIL);
the worker's event loop reads them. The lists of recent exceptions are guarded by
a lock because they are copied while being appended to.

The ``1min`` block (Pulsar's windowed counters) is a *sliding* minute measured in
``MARK_SECONDS`` steps: every ``MARK_SECONDS`` the counters are copied into a *mark*
(by the message loop before it counts a message, and by every read), and the last
minute is "now minus the oldest mark not older than 60 s", so it covers the last
55-60 s and never falls to zero at a reset. Pulsar's instance instead zeroes its
1-minute counters every 60 s (a tumbling window: right after a reset it shows only
a few seconds). The message loop pays one clock read and one comparison per message;
a mark is a small tuple made once per step, never per message.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import NamedTuple

from fnworker.scheduler.model.instances import InstanceMetrics, WindowMetrics
from fnworker.scheduler.model.records import ExceptionInformation, InstanceStatusData

RECENT_EXCEPTIONS = 10
WINDOW_SECONDS = 60.0
MARK_SECONDS = 5.0


class Mark(NamedTuple):
    """The counters at one moment (``time.perf_counter`` seconds)."""

    at: float
    received: int
    processed: int
    system: int
    user: int
    latency_total_ms: float
    latency_count: int


def describe(error: BaseException) -> str:
    """One line naming an exception: ``ValueError: bad input``."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class UserMetric:
    """One ``context.record_metric`` series, accumulated (count, sum, min, max)."""

    __slots__ = ("count", "high", "low", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = float("-inf")

    def record(self, value: float) -> None:
        """Add one observation."""
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)


class InstanceStats:
    """What an instance has done since it started."""

    def __init__(self) -> None:
        self._marks_lock = threading.Lock()
        self.reset()
        self._lock = threading.Lock()
        self._recent_user: deque[ExceptionInformation] = deque(maxlen=RECENT_EXCEPTIONS)
        self._recent_system: deque[ExceptionInformation] = deque(maxlen=RECENT_EXCEPTIONS)

    def reset(self) -> None:
        """Set every counter back to zero (the recent exceptions stay)."""
        self.received = 0
        self.processed_successfully = 0
        self.user_exceptions = 0
        self.system_exceptions = 0
        self.latency_total_ms = 0.0
        self.latency_count = 0
        self.last_invocation_ms = 0
        self.user_metrics: dict[str, UserMetric] = {}
        now = time.perf_counter()
        with self._marks_lock:
            self._marks: deque[Mark] = deque([self.mark_of(now)])
            self.next_mark = now + MARK_SECONDS  # when ``mark`` is due next

    def mark_of(self, now: float) -> Mark:
        """The counters as they are now."""
        return Mark(
            now,
            self.received,
            self.processed_successfully,
            self.system_exceptions,
            self.user_exceptions,
            self.latency_total_ms,
            self.latency_count,
        )

    def mark(self, now: float) -> None:
        """Keep the counters as a mark if one is due, and forget marks older than the
        window (called by the message loop and by reads, hence the lock)."""
        with self._marks_lock:
            if now < self.next_mark:
                return
            marks = self._marks
            marks.append(self.mark_of(now))
            self.next_mark = now + MARK_SECONDS
            while marks[0].at < now - WINDOW_SECONDS:
                marks.popleft()

    def one_minute(self, now: float) -> WindowMetrics:
        """The counters' growth since the oldest mark of the last minute."""
        self.mark(now)
        current = self.mark_of(now)
        with self._marks_lock:
            since = next(m for m in self._marks if m.at >= now - WINDOW_SECONDS)
        count = current.latency_count - since.latency_count
        latency = current.latency_total_ms - since.latency_total_ms
        return WindowMetrics(
            received_total=current.received - since.received,
            processed_successfully_total=current.processed - since.processed,
            system_exceptions_total=current.system - since.system,
            user_exceptions_total=current.user - since.user,
            avg_process_latency=latency / count if count > 0 else None,
        )

    def add_processed(self, count: int) -> None:
        """Count messages whose results are persisted (called from two threads, hence the lock)."""
        with self._lock:
            self.processed_successfully += count

    def record_user_exception(self, error: BaseException) -> None:
        """Count an exception raised by the user's code and keep it among the recent ones."""
        with self._lock:
            self.user_exceptions += 1
            self._recent_user.append(exception_info(error))

    def record_system_exception(self, error: BaseException, count: int = 1) -> None:
        """Count a failure of the host itself (deserialize, publish) for ``count`` messages."""
        with self._lock:
            self.system_exceptions += count
            self._recent_system.append(exception_info(error))

    def record_metric(self, name: str, value: float) -> None:
        """Accumulate a user metric."""
        metric = self.user_metrics.get(name)
        if metric is None:
            metric = self.user_metrics.setdefault(name, UserMetric())
        metric.record(float(value))

    def average_latency_ms(self) -> float:
        """Mean time the user's code took per successful call."""
        return self.latency_total_ms / self.latency_count if self.latency_count else 0.0

    def status(self, *, running: bool, error: str, worker_id: str) -> InstanceStatusData:
        """A snapshot in Pulsar's FunctionInstanceStatusData shape."""
        with self._lock:
            recent_user, recent_system = list(self._recent_user), list(self._recent_system)
        return InstanceStatusData(
            running=running,
            error=error,
            num_received=self.received,
            num_successfully_processed=self.processed_successfully,
            num_user_exceptions=self.user_exceptions,
            latest_user_exceptions=recent_user,
            num_system_exceptions=self.system_exceptions,
            latest_system_exceptions=recent_system,
            average_latency=self.average_latency_ms(),
            last_invocation_time=self.last_invocation_ms,
            worker_id=worker_id,
        )

    def metrics(self, now: float | None = None) -> InstanceMetrics:
        """A snapshot in Pulsar's FunctionInstanceStats metrics shape (``now``: the
        perf_counter time of the read, given by tests)."""
        return InstanceMetrics(
            received_total=self.received,
            processed_successfully_total=self.processed_successfully,
            system_exceptions_total=self.system_exceptions,
            user_exceptions_total=self.user_exceptions,
            avg_process_latency=self.average_latency_ms() if self.latency_count else None,
            one_minute=self.one_minute(time.perf_counter() if now is None else now),
            last_invocation=self.last_invocation_ms or None,
            user_metrics=self.user_metric_values(),
        )

    def user_metric_values(self) -> dict[str, float]:
        """``{name}_sum``, ``_count``, ``_min`` and ``_max`` for every user metric."""
        values: dict[str, float] = {}
        for name, metric in list(self.user_metrics.items()):
            values[f"{name}_sum"] = metric.total
            values[f"{name}_count"] = float(metric.count)
            values[f"{name}_min"] = metric.low
            values[f"{name}_max"] = metric.high
        return values


def exception_info(error: BaseException) -> ExceptionInformation:
    """The record Pulsar's status shows for one exception."""
    return ExceptionInformation(exception_string=describe(error), timestamp_ms=now_ms())


def now_ms() -> int:
    """Wall-clock time in milliseconds."""
    return int(time.time() * 1000)
