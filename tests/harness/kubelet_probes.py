"""Readiness probes for the fake kubelet (tests/harness/kubernetes_kubelet.py): its one job
is deciding, from a container's ``readinessProbe``, when the container is ready.
Parsing and the threshold counting are pure; ``attempt`` and ``watch_readiness`` do
network and process I/O (a loopback connection, or a command run in the pod).

- **Handlers**: ``httpGet`` (``path``, ``port`` as a number or a named
  ``containerPort``, ``host`` defaulting to the pod IP, ``httpHeaders``; scheme HTTP
  only; a 2xx or 3xx answer is a success, redirects are not followed), ``tcpSocket``
  (the connection opens) and ``exec`` (the command, ``$(VAR)``-expanded and with
  mountPaths rewritten as the container's args, runs in the container's env and cwd;
  exit code 0 is a success; killed, with its process group, at the timeout).
- **Timing**: first attempt after ``initialDelaySeconds`` (default 0), then one every
  ``periodSeconds`` (default 10, at least 1) from the start of the previous one, each
  within ``timeoutSeconds`` (default 1). The kubelet's ``probe_period_cap`` (seconds)
  cuts longer periods and initial delays to it, so tests need not wait 10 s.
- **Thresholds**: not ready until ``successThreshold`` (default 1) successes in a row,
  not ready again after ``failureThreshold`` (default 3) failures in a row.
- **Refused**, before the container starts (``CreateContainerConfigError``): ``grpc``,
  scheme HTTPS, a probe with no or several handlers, a port name no containerPort
  has (Kubernetes would start the container and fail every probe instead).

Only ``readinessProbe`` is read: ``livenessProbe`` and ``startupProbe`` are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from tests.harness.kubelet_pod_spec import Launch, command_argv, config_error

HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
USER_AGENT = "kube-probe/1.30"
OUTPUT_CAP = 10 * 1024


@dataclasses.dataclass(frozen=True)
class HttpGet:
    """GET ``path`` from ``host``:``port``."""

    host: str
    port: int
    path: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class TcpSocket:
    """Open a connection to ``host``:``port``."""

    host: str
    port: int


@dataclasses.dataclass(frozen=True)
class Exec:
    """Run ``argv`` with ``env`` in ``cwd``."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path


@dataclasses.dataclass(frozen=True)
class Probe:
    """One container's readiness probe, resolved: what to try and how often."""

    action: HttpGet | TcpSocket | Exec
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


@dataclasses.dataclass(frozen=True)
class Readiness:
    """The probe's verdict so far: ready, and the current run of equal results."""

    ready: bool = False
    last: bool | None = None
    streak: int = 0


# -- pure: parsing and counting ---------------------------------------------------------


def readiness_probe(
    container: Mapping[str, Any], ip: str, launch: Launch, period_cap: float | None = None
) -> Probe | None:
    """The container's readiness probe (None without one); PodConfigError if refused."""
    spec = container.get("readinessProbe")
    if not spec:
        return None
    kinds = [kind for kind in HANDLERS if kind in spec]
    if len(kinds) != 1:
        raise config_error(
            "readinessProbe: needs exactly one of exec, httpGet, tcpSocket, grpc; "
            f"has {', '.join(kinds) or 'none'}"
        )
    cap = float("inf") if period_cap is None else period_cap
    return Probe(
        action=probe_action(kinds[0], spec[kinds[0]], container, ip, launch),
        initial_delay=min(cap, float(spec.get("initialDelaySeconds", 0))),
        period=min(cap, max(1.0, float(spec.get("periodSeconds", 10)))),
        timeout=max(1.0, float(spec.get("timeoutSeconds", 1))),
        success_threshold=max(1, int(spec.get("successThreshold", 1))),
        failure_threshold=max(1, int(spec.get("failureThreshold", 3))),
    )


def probe_action(
    kind: str, handler: Mapping[str, Any], container: Mapping[str, Any], ip: str, launch: Launch
) -> HttpGet | TcpSocket | Exec:
    """The handler ``kind`` of a probe, resolved against the container and the pod IP."""
    where = f"readinessProbe.{kind}"
    if kind == "exec":
        words = list(handler.get("command") or [])
        if not words:
            raise config_error(f"{where}: command is empty")
        argv = command_argv(words, launch.env, launch.mounts)
        return Exec(argv=tuple(argv), env=dict(launch.env), cwd=launch.cwd)
    if kind == "grpc":
        raise config_error(f"{where}: the test kubelet supports httpGet, tcpSocket and exec probes")
    host = str(handler.get("host") or ip)
    port = probe_port(where, handler.get("port"), container)
    if kind == "tcpSocket":
        return TcpSocket(host=host, port=port)
    if str(handler.get("scheme", "HTTP")).upper() != "HTTP":
        raise config_error(f"{where}: the test kubelet probes over HTTP only, not HTTPS")
    headers = tuple((h["name"], h["value"]) for h in handler.get("httpHeaders") or [])
    return HttpGet(host=host, port=port, path=str(handler.get("path") or "/"), headers=headers)


def probe_port(where: str, port: Any, container: Mapping[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) and not isinstance(port, bool):
        if 0 < port < 65536:
            return port
        raise config_error(f"{where}: port {port} is out of range")
    named = {p["name"]: p["containerPort"] for p in container.get("ports") or [] if p.get("name")}
    if port not in named:
        raise config_error(f'{where}: the container has no port named "{port}"')
    return int(named[port])


def observe(state: Readiness, ok: bool, probe: Probe) -> Readiness:
    """Count one result; readiness flips after enough equal results in a row."""
    streak = state.streak + 1 if ok == state.last else 1
    threshold = probe.success_threshold if ok else probe.failure_threshold
    ready = ok if streak >= threshold else state.ready
    return Readiness(ready=ready, last=ok, streak=streak)


# -- I/O: one attempt, and the loop ------------------------------------------------------


async def attempt(probe: Probe) -> tuple[bool, str]:
    """Try the probe once within its timeout: (success, what happened)."""
    try:
        async with asyncio.timeout(probe.timeout):
            return await _act(probe.action)
    except TimeoutError:
        return False, f"timed out after {probe.timeout:g} s"
    except OSError as error:
        return False, str(error) or type(error).__name__


async def _act(action: HttpGet | TcpSocket | Exec) -> tuple[bool, str]:
    """Run one handler (no timeout of its own)."""
    if isinstance(action, HttpGet):
        return await http_get(action)
    if isinstance(action, TcpSocket):
        _reader, writer = await asyncio.open_connection(action.host, action.port)
        await _close(writer)
        return True, f"connected to {action.host}:{action.port}"
    return await run_exec(action)


async def http_get(action: HttpGet) -> tuple[bool, str]:
    """GET the path; a 2xx or 3xx status is a success. The body is read and dropped."""
    reader, writer = await asyncio.open_connection(action.host, action.port)
    try:
        headers = {"Host": f"{action.host}:{action.port}", "User-Agent": USER_AGENT}
        headers.update({"Accept": "*/*", "Connection": "close", **dict(action.headers)})
        lines = [f"GET {action.path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        status_line = await reader.readline()
        while await reader.read(65536):  # let the server finish writing before closing
            pass
    finally:
        await _close(writer)
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"malformed HTTP answer {status_line[:80]!r}"
    code = int(parts[1])
    return 200 <= code < 400, f"HTTP {code} from {action.path}"


async def run_exec(action: Exec) -> tuple[bool, str]:
    """Run the command; exit code 0 is a success. Killed (group) when cancelled."""
    process = await asyncio.create_subprocess_exec(
        *action.argv, env=dict(action.env), cwd=action.cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    text = output[-OUTPUT_CAP:].decode(errors="replace").strip()
    return process.returncode == 0, f"exit code {process.returncode}" + (
        f": {text}" if text else ""
    )


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close a connection, ignoring a peer that already went."""
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def watch_readiness(probe: Probe, report: Callable[[bool, str], Awaitable[None]]) -> None:
    """Probe until cancelled; ``report(ready, what happened)`` at every change."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(probe.initial_delay)
    state = Readiness()
    while True:
        began = loop.time()
        ok, detail = await attempt(probe)
        changed = observe(state, ok, probe)
        if changed.ready != state.ready:
            await report(changed.ready, detail)
        state = changed
        await asyncio.sleep(max(0.0, probe.period - (loop.time() - began)))
