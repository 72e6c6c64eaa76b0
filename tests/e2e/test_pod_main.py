"""The Kubernetes pod entry point (runtimes/instance/pod_main.py), run as a local
process the way a pod's container runs it: it fetches the function's config and
package from a real standalone worker's REST API and processes real messages on
its embedded broker, then stops cleanly on SIGTERM (the kubelet's stop)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulsar
import pytest

from fnworker.runtimes.instance.pod_main import ordinal_of
from tests.e2e.helpers import BASE, call, running_count, wait_for
from tests.e2e.test_standalone_functions import Pipe, deploy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


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
    with log_path.open("wb") as log_file:
        pod = subprocess.Popen(
            [
                sys.executable, "-m", "fnworker.runtimes.instance.pod_main",
                "--admin-url", base, "--service-url", standalone_worker.broker_url,
                "--tenant", "public", "--namespace", "default", "--name", name,
                "--function-version", "1", "--pod-name", f"pf-public-default-{name}-0",
                "--grpc-port", "9093", "--secrets-provider", "clear-text",
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
        finally:
            pod.send_signal(signal.SIGTERM)
            code = pod.wait(timeout=30)
    output = log_path.read_text()
    assert code == 0, output
    assert "instance started: public/default/podmain:0" in output, output
