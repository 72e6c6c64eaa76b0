"""GET /metrics: every instance of every runtime in Prometheus text, with Pulsar's
function metric names and labels, read at scrape time; served over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from fnworker.scheduler.api.app import make_app
from fnworker.scheduler.api.route_table import METRICS_REGISTRY
from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.prometheus import metrics_registry, render
from fnworker.scheduler.model.records import InstanceId

LABELS = {"tenant", "namespace", "name", "instance_id", "cluster", "fqfn"}


class FakeDriver:
    """Holds counters per instance, like a runtime driver's ``metrics()``."""

    def __init__(self, counters: dict[str, InstanceMetrics]) -> None:
        self.counters = counters

    def instances(self) -> set[InstanceId]:
        return {InstanceId(i) for i in self.counters}

    def metrics(self, instance: InstanceId) -> InstanceMetrics | None:
        return self.counters.get(instance)


def samples(text: str) -> dict[tuple[str, str, str], float]:
    """``{(sample name, fqfn, instance_id): value}``."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) == LABELS, sample
            found[(sample.name, sample.labels["fqfn"], sample.labels["instance_id"])] = sample.value
    return found


def test_pulsar_names_and_labels_for_every_instance_of_every_driver() -> None:
    busy = InstanceMetrics(
        received_total=10,
        processed_successfully_total=8,
        user_exceptions_total=2,
        system_exceptions_total=1,
        avg_process_latency=1.5,
        last_invocation=1_700_000_000_000,
        user_metrics={"len-x_sum": 30.0, "len-x_count": 8.0, "len-x_min": 1.0, "len-x_max": 9.0},
    )
    thread = FakeDriver({"acme/prod/f:0": busy, "acme/prod/f:1": InstanceMetrics()})
    process = FakeDriver({"acme/dev/g:0": InstanceMetrics(received_total=3)})
    text = render(metrics_registry([thread, process], "east")).decode()

    got = samples(text)
    assert got[("pulsar_function_received_total", "acme/prod/f", "0")] == 10
    assert got[("pulsar_function_processed_successfully_total", "acme/prod/f", "0")] == 8
    assert got[("pulsar_function_user_exceptions_total", "acme/prod/f", "0")] == 2
    assert got[("pulsar_function_system_exceptions_total", "acme/prod/f", "0")] == 1
    assert got[("pulsar_function_process_latency_ms_count", "acme/prod/f", "0")] == 8
    assert got[("pulsar_function_process_latency_ms_sum", "acme/prod/f", "0")] == 12.0
    assert got[("pulsar_function_last_invocation", "acme/prod/f", "0")] == 1_700_000_000_000
    assert got[("pulsar_function_user_metric_len_x_sum", "acme/prod/f", "0")] == 30
    assert got[("pulsar_function_received_total", "acme/prod/f", "1")] == 0
    assert got[("pulsar_function_received_total", "acme/dev/g", "0")] == 3
    assert 'cluster="east"' in text and 'tenant="acme"' in text and 'name="f"' in text
    assert "# TYPE pulsar_function_received_total counter" in text
    assert "# TYPE pulsar_function_process_latency_ms summary" in text


def test_counters_are_read_at_scrape_time() -> None:
    counters = {"t/n/f:0": InstanceMetrics(received_total=1)}
    registry = metrics_registry([FakeDriver(counters)], "c")
    assert samples(render(registry).decode())[("pulsar_function_received_total", "t/n/f", "0")] == 1
    counters["t/n/f:0"] = InstanceMetrics(received_total=7)
    counters["t/n/g:3"] = InstanceMetrics()
    got = samples(render(registry).decode())
    assert got[("pulsar_function_received_total", "t/n/f", "0")] == 7
    assert ("pulsar_function_received_total", "t/n/g", "3") in got


@pytest.mark.anyio
async def test_the_worker_serves_metrics_over_http() -> None:
    app = make_app(object(), max_body_bytes=4096)  # type: ignore[arg-type]
    app[METRICS_REGISTRY] = metrics_registry(
        [FakeDriver({"public/default/f:0": InstanceMetrics(received_total=4)})], "standalone"
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        reply = await client.get("/metrics")
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        got = samples(await reply.text())
        assert got[("pulsar_function_received_total", "public/default/f", "0")] == 4
    finally:
        await client.close()
