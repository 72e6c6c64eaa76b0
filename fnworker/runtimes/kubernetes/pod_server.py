"""The HTTP endpoints of an instance pod: the worker reads the instance's status and
counters from the control port (``grpcPort``, the port Pulsar's pods serve gRPC
on; here plain HTTP/JSON), and Prometheus scrapes the metrics port. Each port is a
small threaded HTTP server; the handlers only read the host's snapshots.

- control port: ``GET /status`` → InstanceStatusData JSON, ``GET /stats`` →
  InstanceMetrics JSON, ``GET /health`` → ``{"success": true}`` while the message
  loop runs (503 after it stopped);
- metrics port: ``GET /metrics`` → Prometheus text with the worker's metric names
  and labels (``fnworker/scheduler/model/prometheus.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.prometheus import CONTENT_TYPE, function_metrics
from fnworker.scheduler.model.records import InstanceStatusData

Route = Callable[[], tuple[int, str, bytes]]


class InstanceView(msgspec.Struct, frozen=True, kw_only=True):
    """What the endpoints read: the instance id, its cluster and the host's snapshots."""

    instance: str
    cluster: str
    status: Callable[[], InstanceStatusData]
    metrics: Callable[[], InstanceMetrics]
    running: Callable[[], bool]


class _PodCollector(Collector):
    """The one instance's counters, read at scrape time."""

    def __init__(self, view: InstanceView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        """One family per metric name, one sample."""
        yield from function_metrics([(self.view.instance, self.view.metrics())], self.view.cluster)


def control_routes(view: InstanceView) -> dict[str, Route]:
    """The control port's answers (status, stats, health) as (code, type, body)."""
    json_type = "application/json"

    def health() -> tuple[int, str, bytes]:
        running = view.running()
        return (200 if running else 503), json_type, msgspec.json.encode({"success": running})

    return {
        "/status": lambda: (200, json_type, msgspec.json.encode(view.status())),
        "/stats": lambda: (200, json_type, msgspec.json.encode(view.metrics())),
        "/health": health,
    }


def metrics_routes(view: InstanceView) -> dict[str, Route]:
    """The metrics port's one answer: Prometheus text."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_PodCollector(view))
    return {"/metrics": lambda: (200, CONTENT_TYPE, generate_latest(registry))}


def _handler(routes: dict[str, Route]) -> type[BaseHTTPRequestHandler]:
    """A request handler class answering GETs from ``routes`` (404 otherwise)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            code, content_type, body = route() if route else (404, "text/plain", b"not found")
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are not worth a log line each."""

    return Handler


class PodServer:
    """The pod's HTTP servers, each on a daemon thread, until ``close``."""

    def __init__(self, address: str, ports: dict[int, dict[str, Route]]) -> None:
        self.servers = [
            ThreadingHTTPServer((address, port), _handler(routes)) for port, routes in ports.items()
        ]
        for server in self.servers:
            server.daemon_threads = True
        self.threads = [
            threading.Thread(target=server.serve_forever, name=f"pod-http-{port}", daemon=True)
            for server, port in zip(self.servers, ports, strict=True)
        ]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        """Stop serving, free the ports and wait for the serving threads to end."""
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5.0)


def serve_pod(
    view: InstanceView, address: str, control_port: int, metrics_port: int | None
) -> PodServer:
    """Serve the control port (and the metrics port when given) on ``address``."""
    ports = {control_port: control_routes(view)}
    if metrics_port is not None and metrics_port != control_port:
        ports[metrics_port] = metrics_routes(view)
    elif metrics_port is not None:
        ports[control_port] = {**ports[control_port], **metrics_routes(view)}
    return PodServer(address, ports)
