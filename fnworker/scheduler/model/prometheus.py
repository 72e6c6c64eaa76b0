"""Renders the counters of every function instance this worker runs as Prometheus
text (``GET /metrics``), with Pulsar's function metric names and labels. A custom
prometheus-client Collector reads the runtime drivers' ``metrics()`` at scrape
time, so nothing is copied or kept between scrapes. No I/O (the route serves it).

Names and labels follow Pulsar's Python instance (``function_stats.py``):
``pulsar_function_received_total``, ``_processed_successfully_total``,
``_user_exceptions_total``, ``_system_exceptions_total`` (counters),
``pulsar_function_process_latency_ms`` (summary), ``pulsar_function_last_invocation``
(gauge, epoch ms) and ``pulsar_function_user_metric_<name>`` (summary), each
labelled ``tenant, namespace, name, instance_id, cluster, fqfn``. fnworker adds
``pulsar_function_stalled_seconds`` (gauge): how long the instance has made no
progress although it has input (stuck in one message, not connected, or input the
broker does not deliver; fnworker/runtimes/instance/progress.py), 0 while healthy; alert on
it being above 0. Our instances
keep a mean latency, not every observation, so the latency summary has
``_count`` = messages processed and ``_sum`` = mean × that count, and no quantiles.

The worker's own control plane adds ``fnworker_assignment_changes_total`` (counter,
labels ``reason, cluster``): the assignment records this worker published while it
led the fleet, by why each was written (``AssignmentChangeCounter``; reasons in
``scheduler.decide.assignment_plan.CHANGE_REASONS``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.records import InstanceId, split_fqfn, split_instance_id

PREFIX = "pulsar_function_"
LABELS = ("tenant", "namespace", "name", "instance_id", "cluster", "fqfn")
# The classic text format every Prometheus version reads (generate_latest writes it).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
COUNTERS: tuple[tuple[str, str, Callable[[InstanceMetrics], float]], ...] = (
    ("received", "Total number of messages received from source.", lambda m: m.received_total),
    (
        "processed_successfully",
        "Total number of messages processed successfully.",
        lambda m: m.processed_successfully_total,
    ),
    ("user_exceptions", "Total number of user exceptions.", lambda m: m.user_exceptions_total),
    (
        "system_exceptions",
        "Total number of system exceptions.",
        lambda m: m.system_exceptions_total,
    ),
)
USER_METRIC_SUFFIXES = ("_sum", "_count", "_min", "_max")

InstanceSample = tuple[str, InstanceMetrics]


def label_values(instance: str, cluster: str) -> list[str]:
    """The label values of one instance, in LABELS order."""
    fqfn, index = split_instance_id(instance)
    tenant, namespace, name = split_fqfn(fqfn)
    return [tenant, namespace, name, str(index), cluster, fqfn]


def metric_name_part(text: str) -> str:
    """A user metric's name made valid inside a Prometheus metric name."""
    cleaned = re.sub(r"[^a-zA-Z0-9_]", "_", text)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"


def function_metrics(samples: Iterable[InstanceSample], cluster: str) -> list[Metric]:
    """The metric families for these instances' counters (pure)."""
    counters = {
        key: CounterMetricFamily(f"{PREFIX}{key}", text, labels=LABELS) for key, text, _ in COUNTERS
    }
    latency = SummaryMetricFamily(
        f"{PREFIX}process_latency_ms", "Process latency in milliseconds.", labels=LABELS
    )
    last = GaugeMetricFamily(
        f"{PREFIX}last_invocation",
        "The timestamp of the last invocation of the function.",
        labels=LABELS,
    )
    stalled = GaugeMetricFamily(
        f"{PREFIX}stalled_seconds",
        "Seconds the instance has made no progress although it has input; 0 while healthy.",
        labels=LABELS,
    )
    user: dict[str, SummaryMetricFamily] = {}
    for instance, metrics in sorted(samples, key=lambda sample: sample[0]):
        labels = label_values(instance, cluster)
        for key, _, read in COUNTERS:
            counters[key].add_metric(labels, float(read(metrics)))
        processed = metrics.processed_successfully_total
        latency.add_metric(labels, processed, (metrics.avg_process_latency or 0.0) * processed)
        last.add_metric(labels, float(metrics.last_invocation or 0))
        stalled.add_metric(labels, metrics.stalled_seconds)
        add_user_metrics(user, labels, metrics.user_metrics)
    return [*counters.values(), latency, last, stalled, *user.values()]


def add_user_metrics(
    families: dict[str, SummaryMetricFamily], labels: list[str], values: dict[str, float]
) -> None:
    """``context.record_metric`` series as summaries (count and sum)."""
    names = {key[: -len("_count")] for key in values if key.endswith("_count")}
    for name in sorted(names):
        family_name = f"{PREFIX}user_metric_{metric_name_part(name)}"
        family = families.get(family_name)
        if family is None:
            family = families[family_name] = SummaryMetricFamily(
                family_name, f"User metric {name}.", labels=LABELS
            )
        count = int(values.get(f"{name}_count", 0))
        family.add_metric(labels, count, values.get(f"{name}_sum", 0.0))


class MetricsSource(Protocol):
    """What the collector reads from each runtime driver at scrape time."""

    def instances(self) -> set[InstanceId]:
        """Every instance the source holds."""
        ...

    def metrics(self, instance: InstanceId) -> InstanceMetrics | None:
        """The instance's counters, or None when it is gone."""
        ...


class FunctionsCollector(Collector):
    """Collects, at scrape time, the counters of every instance of every driver."""

    def __init__(self, drivers: Sequence[MetricsSource], cluster: str) -> None:
        self.drivers = drivers
        self.cluster = cluster

    def collect(self) -> Iterator[Metric]:
        """One family per metric name, one sample per instance."""
        yield from function_metrics(self.samples(), self.cluster)

    def samples(self) -> list[InstanceSample]:
        """(instance id, counters) of every instance any driver holds."""
        found: list[InstanceSample] = []
        for driver in self.drivers:
            for instance in driver.instances():
                metrics = driver.metrics(instance)
                if metrics is not None:
                    found.append((instance, metrics))
        return found


class AssignmentChangeCounter:
    """How many assignment records this worker's leader passes published, by reason.
    Every known reason is shown from the start, at 0 until it happens."""

    def __init__(self, reasons: Iterable[str]) -> None:
        self.counts: dict[str, int] = dict.fromkeys(reasons, 0)

    def add(self, counts: Mapping[str, int]) -> None:
        """Count one publish's records (``{reason: records}``)."""
        for reason, count in counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + count


class AssignmentChangesCollector(Collector):
    """Renders ``fnworker_assignment_changes_total{reason, cluster}`` at scrape time."""

    def __init__(self, counter: AssignmentChangeCounter, cluster: str) -> None:
        self.counter = counter
        self.cluster = cluster

    def collect(self) -> Iterator[Metric]:
        """One sample per reason."""
        family = CounterMetricFamily(
            "fnworker_assignment_changes",
            "Assignment records this worker published while leading, by reason.",
            labels=("reason", "cluster"),
        )
        for reason, count in self.counter.counts.items():
            family.add_metric([reason, self.cluster], float(count))
        yield family


def metrics_registry(
    drivers: Sequence[MetricsSource],
    cluster: str,
    assignment_changes: AssignmentChangeCounter | None = None,
) -> CollectorRegistry:
    """A registry holding the functions collector and, when given, the leader's
    assignment-change counter (no process/platform metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FunctionsCollector(drivers, cluster))
    if assignment_changes is not None:
        registry.register(AssignmentChangesCollector(assignment_changes, cluster))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format 0.0.4."""
    return generate_latest(registry)
