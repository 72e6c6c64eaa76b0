"""The Kubernetes pod entry point (fnworker/runtimes/kubernetes/pod_main.py), run as a local
process the way a pod's container runs it: it fetches the function's config and
package from a real standalone worker's REST API and processes real messages on
its embedded broker, then stops cleanly on SIGTERM (the kubelet's stop)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pulsar
import pytest

from fnworker.coordination.embedded_broker import free_loopback_port
from fnworker.runtimes.kubernetes.pod_main import ordinal_of
from tests.e2e.helpers import BASE, call, running_count, wait_for
from tests.e2e.pipe import Pipe
from tests.e2e.test_standalone_functions import deploy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def get_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return str(reply.read().decode())


def get_json(port: int, path: str) -> Any:
    return json.loads(get_text(port, path))


def counted(port: int, path: str, key: str, at_least: int) -> Any:
    """The JSON at ``path`` once its ``key`` reached ``at_least``, else None."""
    try:
        body = get_json(port, path)
    except OSError:
        return None
    return body if body.get(key, 0) >= at_least else None


def test_ordinal_is_the_number_after_the_last_dash() -> None:
    assert ordinal_of("pf-public-default-a-b-12") == 12
    with pytest.raises(ValueError, match="ordinal"):
        ordinal_of("pf-public-default-x")


def test_pod_fetches_its_package_and_processes_messages(
    standalone_worker: Any, client: pulsar.Client, tmp_path: Path
) -> None:
    base = str(standalone_worker.admin_url)
    name = "podmain"
    deploy(base, name)
    assert call(base, "POST", f"{BASE}/{name}/stop").status in (200, 204)
    wait_for(lambda: running_count(base, name) == 0)
    log_path = tmp_path / "pod.log"
    control_port, metrics_port = free_loopback_port(), free_loopback_port()
    with log_path.open("wb") as log_file:
        pod = subprocess.Popen(
            [
                sys.executable, "-m", "fnworker.runtimes.kubernetes.pod_main",
                "--admin-url", base, "--service-url", standalone_worker.broker_url,
                "--tenant", "public", "--namespace", "default", "--name", name,
                "--function-version", "1", "--pod-name", f"pf-public-default-{name}-0",
                "--grpc-port", str(control_port), "--metrics-port", str(metrics_port),
                "--bind-address", "127.0.0.1", "--secrets-provider", "clear-text",
                "--work-dir", str(tmp_path / "pod"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            pipe = Pipe(client, name)
            pipe.send(["a", "b", "c"])
            received = pipe.receive_all({"a!", "b!", "c!"})
            assert received >= {"a!", "b!", "c!"}, log_path.read_text()
            assert (tmp_path / "pod" / "package" / "exclamation_function.py").exists()
            status = wait_for(lambda: counted(control_port, "/status", "numReceived", 3))
            assert status["running"] is True and status["numSuccessfullyProcessed"] >= 3
            stats = get_json(control_port, "/stats")
            assert stats["receivedTotal"] >= 3
            assert get_json(control_port, "/health") == {"success": True}
            metrics = get_text(metrics_port, "/metrics")
            assert (
                'pulsar_function_received_total{cluster="standalone",fqfn="public/default/podmain",'
                'instance_id="0",name="podmain",namespace="default",tenant="public"}'
            ) in metrics
        finally:
            pod.send_signal(signal.SIGTERM)
            code = pod.wait(timeout=30)
    output = log_path.read_text()
    assert code == 0, output
    assert "instance started: public/default/podmain:0" in output, output
