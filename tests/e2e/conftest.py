"""A real ``fnworker standalone`` process (with its embedded broker) per test
module, driven over HTTP as a user would; every process is stopped by PID."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulsar
import pytest

from fnworker.coordination.embedded_broker import free_loopback_port, pid_alive
from tests.conftest import quiet_client

FNWORKER = Path(sys.executable).with_name("fnworker")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class StandaloneWorker:
    """A running ``fnworker standalone`` process and where to reach it."""

    process: subprocess.Popen[bytes]
    admin_url: str
    state_dir: Path
    log_path: Path
    ssl_context: ssl.SSLContext | None = None
    """The context that trusts the worker's certificate, for an https admin_url."""

    @property
    def broker_url(self) -> str:
        """The embedded broker's service URL, read from the state directory."""
        pid_file = self.state_dir / "broker" / "broker.pid"
        return broker_url_of(self.log_path, pid_file)

    @property
    def broker_pid(self) -> int | None:
        """The embedded broker's pid, if it was started."""
        pid_file = self.state_dir / "broker" / "broker.pid"
        return int(pid_file.read_text()) if pid_file.exists() else None


def broker_url_of(log_path: Path, pid_file: Path) -> str:
    """Find the broker URL the worker logged when it started the broker."""
    for line in log_path.read_text(errors="replace").splitlines():
        if "embedded broker started" in line and "pulsar://" in line:
            start = line.index("pulsar://")
            return line[start:].split()[0].strip("'\",")
    raise AssertionError(f"no broker URL in {log_path}")


def wait_ready(worker: StandaloneWorker, timeout: float = 30.0) -> None:
    """Poll GET /initialized until 200, failing fast if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker exited early:\n{worker.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(
                f"{worker.admin_url}/initialized", timeout=1, context=worker.ssl_context
            ) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"worker not ready in {timeout} s:\n{worker.log_path.read_text()[-3000:]}")


def stop(worker: StandaloneWorker) -> None:
    """SIGTERM the worker, SIGKILL it if it lingers, and make sure its broker is gone."""
    broker_pid = worker.broker_pid
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
    if broker_pid is not None and pid_alive(broker_pid):
        os.kill(broker_pid, signal.SIGKILL)


def launch(
    state_dir: Path,
    *extra: str,
    tls_port: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> StandaloneWorker:
    """Start ``fnworker standalone`` on a free loopback port; with ``tls_port`` the
    ports come from the ``--config`` in ``extra`` and the admin URL is HTTPS;
    ``preexec_fn`` runs in the child before it starts (e.g. to cap its memory)."""
    port = free_loopback_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    port_flags = ["--port", str(port)] if tls_port is None else []
    log_path = state_dir / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(FNWORKER),
                "standalone",
                "--state-dir",
                str(state_dir),
                *port_flags,
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            preexec_fn=preexec_fn,
        )
    if tls_port is not None:
        return StandaloneWorker(
            process, f"https://localhost:{tls_port}", state_dir, log_path, ssl_context
        )
    return StandaloneWorker(process, f"http://127.0.0.1:{port}", state_dir, log_path)


KUBERNETES_FACTORY = "org.apache.pulsar.functions.runtime.kubernetes.KubernetesRuntimeFactory"


def configured_worker(state: Path, settings: dict[str, Any]) -> Iterator[StandaloneWorker]:
    """A ready standalone worker (embedded broker) started with ``settings`` as its
    ``--config`` file, stopped when the generator closes."""
    import yaml

    config = state / "worker.yml"
    config.write_text(yaml.safe_dump(settings))
    running = launch(state / "state", "--config", str(config))
    try:
        wait_ready(running)
        yield running
    finally:
        stop(running)


def kubernetes_worker(api_url: str, state: Path, **factory: object) -> Iterator[StandaloneWorker]:
    """A ``configured_worker`` whose runtime is Kubernetes at ``api_url`` (the in-test
    API server); ``factory``: more functionRuntimeFactoryConfigs keys (jobNamespace
    defaults to ``functions``)."""
    configs = {"k8Uri": api_url, "jobNamespace": "functions", **factory}
    yield from configured_worker(
        state,
        {
            "functionRuntimeFactoryClassName": KUBERNETES_FACTORY,
            "functionRuntimeFactoryConfigs": configs,
        },
    )


@pytest.fixture(scope="module")
def standalone_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneWorker]:
    """One standalone worker shared by the tests of a module."""
    worker = launch(tmp_path_factory.mktemp("standalone"))
    try:
        wait_ready(worker)
        yield worker
    finally:
        stop(worker)


@pytest.fixture(scope="module")
def client(standalone_worker: StandaloneWorker) -> Iterator[pulsar.Client]:
    """A pulsar client on the module's standalone worker's embedded broker."""
    with quiet_client(standalone_worker.broker_url, "e2e-pulsar") as connection:
        yield connection
