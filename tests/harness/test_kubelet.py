"""The fake kubelet (tests/harness/kubernetes_kubelet.py) on its own, on the loop of the
in-test API server: it starts every pod as a local process from the pod's command,
args and env (field refs, secret refs and secret volumes), holds a container whose
config is missing or unsupported, restarts exiting processes, stops them on delete, and
runs readiness probes (HTTP, TCP, exec) with their periods cut to 0.2 s
(``probe_period_cap``). These test the harness, not fnworker."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from fnworker.coordination.embedded_broker import free_loopback_port, pid_alive
from tests.harness.kubelet_probes import Probe, Readiness, TcpSocket, observe
from tests.harness.kubernetes_api import KubernetesApi
from tests.harness.kubernetes_kubelet import Kubelet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SETS = "/apis/apps/v1/namespaces/default/statefulsets"
SECRETS = "/api/v1/namespaces/default/secrets"
REPORT = """
import json, os, sys, time
files = {}
for path in sys.argv[3:]:
    files[path] = open(path).read() if os.path.exists(path) else None
names = ("POD_NAME", "POD_IP", "NS", "TOKEN", "GREETING", "TMPDIR", "PYTHONPATH", "HOSTNAME")
print("REPORT " + json.dumps({"argv": sys.argv[1:], "env": {n: os.environ.get(n) for n in names},
      "files": files, "cwd": os.getcwd()}), flush=True)
time.sleep(600)
"""
SERVE = """
import os, socket, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
mode, port, gate, sick = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
while not os.path.exists(gate):  # refuse connections until the test opens the gate
    time.sleep(0.05)
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        code = 503 if os.path.exists(sick) else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"success": %s}' % (b"false" if code == 503 else b"true"))
    def log_message(self, *args):
        pass
if mode == "http":  # 200 on any path, 503 once the sick file exists
    HTTPServer((os.environ["POD_IP"], port), Health).serve_forever()
with socket.create_server((os.environ["POD_IP"], port)) as server:  # until sick
    server.settimeout(0.05)
    while not os.path.exists(sick):
        try:
            server.accept()[0].close()
        except TimeoutError:
            pass
time.sleep(600)
"""
POD_IP_ENV = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
PERIOD_CAP = 0.2


def stateful_set(
    name: str, command: list[str], args: list[str], replicas: int = 1, **pod: Any
) -> dict[str, Any]:
    """A StatefulSet whose one container runs ``command`` + ``args``."""
    labels = {"app": name}
    container: dict[str, Any] = {"name": "main", "image": "python:3.11", "command": command}
    container.update(args=args, env=pod.pop("env", []), volumeMounts=pod.pop("mounts", []))
    if "probe" in pod:
        container["readinessProbe"] = pod.pop("probe")
    if "ports" in pod:
        container["ports"] = pod.pop("ports")
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [container], **pod},
            },
        },
    }


def secret(name: str, **values: str) -> dict[str, Any]:
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}


async def post(api: KubernetesApi, path: str, body: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request("POST", api.url + path, json=body) as response,
    ):
        assert response.status == 201, await response.text()


async def delete(api: KubernetesApi, path: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request("DELETE", api.url + path) as response,
    ):
        assert response.status == 200, await response.text()


async def eventually(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    with anyio.fail_after(seconds):
        while not (result := check()):
            await anyio.sleep(0.05)
        return result


def container_of(api: KubernetesApi, pod: str) -> dict[str, Any]:
    """The container status of a stored pod ({} while it has none)."""
    stored = api.get("pods", "default", pod) or {}
    statuses = stored.get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def report_of(kubelet: Kubelet, pod: str) -> dict[str, Any] | None:
    """The REPORT line the pod's process printed, once it did."""
    lines = kubelet.log_text("default", pod).splitlines()
    found = [line for line in lines if line.startswith("REPORT ")]
    return json.loads(found[-1][len("REPORT ") :]) if found else None


@pytest.mark.anyio
async def test_pods_run_with_their_env_args_ip_and_secret_volume(
    kubernetes_api: KubernetesApi,
    kubelet: Kubelet,
) -> None:
    api = kubernetes_api
    await post(api, SECRETS, secret("creds", token="s3cret", other="x"))
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "GREETING", "value": "hi $(POD_NAME) in /etc/creds"},
        {"name": "PYTHONPATH", "value": "/pulsar/deps"},
    ]
    mounts = [{"name": "auth", "mountPath": "/etc/creds", "readOnly": True}]
    volumes = [{"name": "auth", "secret": {"secretName": "creds"}}]
    args = ["$(POD_NAME)", "$$(POD_NAME)", "/etc/creds/token", "/etc/creds/other"]
    body = stateful_set(
        "web", ["python", "-c", REPORT], args, replicas=2, env=env, mounts=mounts, volumes=volumes
    )
    await post(api, SETS, body)
    reports = []
    for pod in ("web-0", "web-1"):
        reports.append(await eventually(functools.partial(report_of, kubelet, pod)))
    for ordinal, report in enumerate(reports):
        pod = f"web-{ordinal}"
        local = report["argv"][2].rsplit("/", 1)[0]
        assert report["argv"] == [pod, "$(POD_NAME)", f"{local}/token", f"{local}/other"]
        assert report["files"] == {f"{local}/token": "s3cret", f"{local}/other": "x"}
        assert report["env"]["POD_NAME"] == report["env"]["HOSTNAME"] == pod
        assert report["env"]["POD_IP"] == kubelet.ip_of("default", pod)
        assert report["env"]["POD_IP"].startswith("127.0.")
        assert not report["env"]["POD_IP"].startswith("127.0.0.")
        assert report["env"]["NS"] == "default"
        assert report["env"]["TOKEN"] == "s3cret"
        assert report["env"]["GREETING"] == f"hi {pod} in {local}"
        assert report["env"]["TMPDIR"].startswith(report["cwd"])
        assert report["env"]["PYTHONPATH"].startswith("/pulsar/deps:")
    assert reports[0]["env"]["POD_IP"] != reports[1]["env"]["POD_IP"]
    assert reports[0]["env"]["TMPDIR"] != reports[1]["env"]["TMPDIR"]
    await eventually(lambda: container_of(api, "web-0").get("ready"))
    stored = api.get("pods", "default", "web-0")
    assert stored is not None
    assert stored["status"]["phase"] == "Running"
    assert stored["status"]["podIP"] == reports[0]["env"]["POD_IP"]
    assert "running" in stored["status"]["containerStatuses"][0]["state"]


@pytest.mark.anyio
async def test_a_missing_secret_holds_the_container_until_it_exists(
    kubernetes_api: KubernetesApi,
    kubelet: Kubelet,
) -> None:
    api = kubernetes_api
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]
    await post(api, SETS, stateful_set("late", ["python", "-c", REPORT], ["a", "b"], env=env))
    state = await eventually(lambda: container_of(api, "late-0").get("state", {}).get("waiting"))
    assert state == {"reason": "CreateContainerConfigError", "message": 'secret "late" not found'}
    assert api.get("pods", "default", "late-0")["status"]["phase"] == "Pending"  # type: ignore[index]
    assert kubelet.pid_of("default", "late-0") is None
    await post(api, SECRETS, secret("late", token="now"))
    report = await eventually(lambda: report_of(kubelet, "late-0"))
    assert report["env"]["TOKEN"] == "now"


@pytest.mark.anyio
async def test_an_unsupported_field_ref_is_a_clear_error(
    kubernetes_api: KubernetesApi,
    kubelet: Kubelet,
) -> None:
    api = kubernetes_api
    env = [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    await post(api, SETS, stateful_set("odd", ["python", "-c", REPORT], ["a", "b"], env=env))
    state = await eventually(lambda: container_of(api, "odd-0").get("state", {}).get("waiting"))
    assert state["reason"] == "CreateContainerConfigError"
    assert "spec.nodeName" in state["message"] and "metadata.name" in state["message"]


@pytest.mark.anyio
async def test_an_exiting_process_is_restarted_and_a_deleted_set_stops_it(
    kubernetes_api: KubernetesApi,
    kubelet: Kubelet,
) -> None:
    api = kubernetes_api
    script = "import sys, time; print('up', flush=True); time.sleep(0.3); sys.exit(3)"
    await post(api, SETS, stateful_set("crash", ["python3", "-c", script], []))
    await eventually(lambda: container_of(api, "crash-0").get("restartCount", 0) >= 2, 30)
    status = container_of(api, "crash-0")
    assert status["lastState"]["terminated"]["exitCode"] == 3
    log = kubelet.log_text("default", "crash-0")
    assert log.count("up\n") >= 2  # every run's output is kept
    waiting = await eventually(lambda: container_of(api, "crash-0")["state"].get("waiting"))
    assert waiting["reason"] == "CrashLoopBackOff" and "exited with code 3" in waiting["message"]
    ignores_term = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring', 'SIGTERM', flush=True); time.sleep(600)"
    )
    await post(api, SETS, stateful_set("stubborn", [sys.executable, "-c", ignores_term], []))
    pid = await eventually(lambda: kubelet.pid_of("default", "stubborn-0"))
    await eventually(lambda: "ignoring SIGTERM" in kubelet.log_text("default", "stubborn-0"))
    began = time.monotonic()
    await delete(api, SETS + "/stubborn")
    await eventually(lambda: not pid_alive(pid), 10)
    assert time.monotonic() - began >= 0.9  # SIGTERM ignored: SIGKILL after the 1 s grace
    assert "still running after 1 s: SIGKILL" in kubelet.log_text("default", "stubborn-0")
    await delete(api, SETS + "/crash")
    await eventually(lambda: not kubelet.alive(), 10)


def condition(api: KubernetesApi, pod: str, kind: str) -> str:
    """The status ("True"/"False") of one of a stored pod's conditions ("" without it)."""
    stored = api.get("pods", "default", pod) or {}
    conditions = stored.get("status", {}).get("conditions") or []
    return next((str(c["status"]) for c in conditions if c["type"] == kind), "")


def readiness_history(api: KubernetesApi, pod: str) -> list[bool]:
    """The container's ready flag in every watch event of the pod, repeats merged."""
    flags: list[bool] = []
    for _version, event, resource, _ns, body in api.history:
        if resource != "pods" or body["metadata"]["name"] != pod or event == "DELETED":
            continue
        statuses = body.get("status", {}).get("containerStatuses") or [{}]
        flag = bool(statuses[0].get("ready"))
        if not flags or flags[-1] != flag:
            flags.append(flag)
    return flags


def ready(api: KubernetesApi, pod: str) -> bool:
    return bool(container_of(api, pod).get("ready"))


def running(api: KubernetesApi, pod: str) -> bool:
    return "running" in container_of(api, pod).get("state", {})


def probe_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name().startswith("probe ")]


def test_readiness_flips_after_threshold_results_in_a_row() -> None:
    probe = Probe(action=TcpSocket(host="127.0.0.1", port=1), success_threshold=2)
    state, seen = Readiness(), []
    for ok in (False, True, False, True, True, False, False, True, False, False, False):
        state = observe(state, ok, probe)
        seen.append(state.ready)
    assert seen == [False, False, False, False, True, True, True, True, True, True, False]


@pytest.mark.anyio
async def test_an_http_readiness_probe_decides_when_the_pod_is_ready(
    kubernetes_api: KubernetesApi,
    kubelet: Kubelet,
    tmp_path: Path,
) -> None:
    api, pod = kubernetes_api, "web-0"
    kubelet.probe_period_cap = PERIOD_CAP
    gate, sick = tmp_path / "gate", tmp_path / "sick"
    port = free_loopback_port()
    args = ["http", str(port), str(gate), str(sick)]
    probe = {
        "httpGet": {"path": "/health", "port": "health"},
        "periodSeconds": 10,
        "failureThreshold": 2,
    }
    ports = [{"name": "health", "containerPort": port}]
    body = stateful_set(
        "web", ["python", "-c", SERVE], args, env=POD_IP_ENV, probe=probe, ports=ports
    )
    await post(api, SETS, body)
    pid = await eventually(lambda: kubelet.pid_of("default", pod))
    await eventually(lambda: running(api, pod))
    await anyio.sleep(5 * PERIOD_CAP)  # negative check: refused at every probe, never ready
    status = container_of(api, pod)
    assert status["ready"] is False and status["started"] is True
    assert condition(api, pod, "Ready") == condition(api, pod, "ContainersReady") == "False"
    gate.touch()
    await eventually(lambda: ready(api, pod), 10)
    assert condition(api, pod, "Ready") == condition(api, pod, "ContainersReady") == "True"
    sick.touch()
    await eventually(lambda: not ready(api, pod), 10)
    assert condition(api, pod, "Ready") == "False"
    status = container_of(api, pod)
    assert status["restartCount"] == 0 and "running" in status["state"]
    assert kubelet.pid_of("default", pod) == pid
    sick.unlink()
    await eventually(lambda: ready(api, pod), 10)
    assert readiness_history(api, pod) == [False, True, False, True]
    log = kubelet.log_text("default", pod)
    assert "readiness probe: not ready (HTTP 503 from /health)" in log
    assert "readiness probe: ready (HTTP 200 from /health)" in log


@pytest.mark.anyio
async def test_a_tcp_readiness_probe_and_probing_ends_with_the_pod(
    kubernetes_api: KubernetesApi,
    kubelet: Kubelet,
    tmp_path: Path,
) -> None:
    api, pod = kubernetes_api, "tcp-0"
    kubelet.probe_period_cap = PERIOD_CAP
    gate, sick = tmp_path / "gate", tmp_path / "sick"
    port = free_loopback_port()
    probe = {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}
    args = ["tcp", str(port), str(gate), str(sick)]
    await post(
        api, SETS, stateful_set("tcp", ["python", "-c", SERVE], args, env=POD_IP_ENV, probe=probe)
    )
    await eventually(lambda: running(api, pod))
    await anyio.sleep(5 * PERIOD_CAP)  # negative check: several failed probes, never ready
    assert not ready(api, pod) and len(probe_tasks()) == 1
    gate.touch()
    await eventually(lambda: ready(api, pod), 10)
    sick.touch()  # the server closes its listening socket
    await eventually(lambda: not ready(api, pod), 10)
    assert running(api, pod) and readiness_history(api, pod) == [False, True, False]
    await delete(api, SETS + "/tcp")
    await eventually(lambda: not kubelet.alive(), 10)
    await eventually(lambda: not probe_tasks(), 5)


@pytest.mark.anyio
async def test_an_exec_readiness_probe_and_a_restart_starts_unready(
    kubernetes_api: KubernetesApi,
    kubelet: Kubelet,
    tmp_path: Path,
) -> None:
    api, pod = kubernetes_api, "ex-0"
    kubelet.probe_period_cap = PERIOD_CAP
    gate = tmp_path / "gate"
    check = "import os, sys; sys.exit(not os.path.exists(sys.argv[1]))"
    probe = {"exec": {"command": ["python", "-c", check, "$(GATE)"]}, "periodSeconds": 3}
    env = [{"name": "GATE", "value": str(gate)}]
    sleeper = "import time; time.sleep(600)"
    await post(api, SETS, stateful_set("ex", ["python", "-c", sleeper], [], env=env, probe=probe))
    await eventually(lambda: running(api, pod))
    await anyio.sleep(5 * PERIOD_CAP)  # negative check: several failed probes, never ready
    assert not ready(api, pod)
    gate.touch()
    await eventually(lambda: ready(api, pod), 10)
    first = kubelet.kill("default", pod)
    await eventually(lambda: (kubelet.pid_of("default", pod) or first) != first, 10)
    await eventually(lambda: ready(api, pod), 10)
    assert container_of(api, pod)["restartCount"] == 1
    assert readiness_history(api, pod) == [False, True, False, True]


@pytest.mark.anyio
async def test_an_unsupported_probe_does_not_start_the_container(
    kubernetes_api: KubernetesApi,
    kubelet: Kubelet,
) -> None:
    api = kubernetes_api
    probe = {"grpc": {"port": 9000}}
    await post(api, SETS, stateful_set("rpc", ["python", "-c", REPORT], ["a", "b"], probe=probe))
    state = await eventually(lambda: container_of(api, "rpc-0").get("state", {}).get("waiting"))
    assert state["reason"] == "CreateContainerConfigError"
    assert "readinessProbe.grpc" in state["message"] and "httpGet" in state["message"]
    assert kubelet.pid_of("default", "rpc-0") is None
