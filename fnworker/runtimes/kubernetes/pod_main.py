"""The entry point of one instance pod of the Kubernetes runtime
(``python -m fnworker.runtimes.kubernetes.pod_main``, as ``manifests.py`` renders it):
fetches the function's config and package from the worker's REST API, runs the
shared InstanceHost until SIGTERM (the kubelet's stop) or until its message loop
stops. Does HTTP, file and broker I/O and runs user code.

Command line (``manifests.pod_args``): ``--admin-url --service-url --tenant
--namespace --name --function-version --function-create-time-ms --pod-name
--grpc-port --secrets-provider --cluster-name --state-namespace [--metrics-port]
[--auth-token-file F [--tls-trust-cert-path CA]]``. ``--function-create-time-ms``
is the function's incarnation: its state is read and written as that
incarnation's, as every other runtime's instances do (docs/state.md). The instance
(shard) id is the ordinal after the last ``-`` of the pod name. The config comes
from ``GET /admin/v3/functions/{t}/{ns}/{n}`` and the package from
``GET .../download`` (with the token as a Bearer header when given; retried with
backoff while the worker is unreachable or answers 5xx). The token file also
authenticates the broker client (``AuthenticationToken`` with ``file://``, re-read
on reconnect). The control port (``--grpc-port``) answers the worker's status and
counter reads and the metrics port Prometheus (``pod_server.py``), both on
``--bind-address`` (default ``$POD_IP``, which the manifest sets from the pod's IP).

Logs go to stdout/stderr (the container log). Exit codes as the process runtime's:
0 stopped as asked; 3 the package does not load (the kubelet's restart will not
help, but is counted); 4 the instance could not start or its package could not be
fetched; 5 its message loop stopped.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pulsar

from fnworker.runtimes.broker_client import make_client
from fnworker.runtimes.instance.host import InstanceHost, InstanceStartError
from fnworker.runtimes.instance.instance_plan import PlanError
from fnworker.runtimes.instance.package_layout import PackageError
from fnworker.runtimes.instance.state_logs import state_log_for
from fnworker.runtimes.instance.stats import describe
from fnworker.runtimes.kubernetes.pod_server import InstanceView, serve_pod
from fnworker.runtimes.process.process_main import close_quietly, skip_consumer_ids
from fnworker.scheduler.decide.function_validation import function_config_from_mapping
from fnworker.scheduler.model.instances import (
    DEFAULT_FUNCTIONS_NAMESPACE,
    ClientSettings,
    InstanceSpec,
    StateSettings,
)
from fnworker.scheduler.model.records import FunctionRecord, fqfn_of, instance_id_of
from fnworker.scheduler.settings.logging_setup import configure_logging

EXIT_STOPPED = 0
EXIT_LOAD_FAILED = 3
EXIT_START_FAILED = 4
EXIT_LOOP_STOPPED = 5
TOKEN_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
TICK_SECONDS = 0.25

log = logging.getLogger("fnworker.instance.pod")


class FetchError(Exception):
    """The worker's REST API did not give the function's config or package."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line ``manifests.pod_args`` renders."""
    parser = argparse.ArgumentParser(prog="fnworker-pod")
    parser.add_argument("--admin-url", required=True)
    parser.add_argument("--service-url", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--function-version", type=int, required=True)
    parser.add_argument(
        "--function-create-time-ms", type=int, default=0,
        help="the function's create time: the incarnation its state belongs to",
    )  # fmt: skip
    parser.add_argument("--pod-name", required=True)
    parser.add_argument("--grpc-port", type=int, default=9093)
    parser.add_argument("--metrics-port", type=int, default=None)
    parser.add_argument("--secrets-provider", default="clear-text")
    parser.add_argument("--auth-token-file", type=Path, default=None)
    parser.add_argument("--tls-trust-cert-path", type=Path, default=None)
    parser.add_argument(
        "--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "fnworker-pod"
    )
    parser.add_argument("--fetch-timeout-seconds", type=float, default=120.0)
    parser.add_argument("--stop-grace-seconds", type=float, default=5.0)
    parser.add_argument("--cluster-name", default="standalone")
    parser.add_argument("--state-namespace", default=DEFAULT_FUNCTIONS_NAMESPACE)
    parser.add_argument(
        "--bind-address", default=os.environ.get("POD_IP") or "0.0.0.0",
        help="where the control and metrics ports listen (default: $POD_IP, else all)",
    )  # fmt: skip
    return parser.parse_args(argv)


def ordinal_of(pod_name: str) -> int:
    """The StatefulSet ordinal of a pod name (``pf-a-b-c-2`` → 2)."""
    match = re.fullmatch(r".*-(\d+)", pod_name)
    if match is None:
        raise ValueError(f"pod name {pod_name!r} does not end in -<ordinal>")
    return int(match.group(1))


class AdminClient:
    """GETs on the worker's REST API with the function's token and the cluster CA."""

    def __init__(self, base_url: str, token: str | None, ca_path: Path | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.context = ssl.create_default_context(cafile=str(ca_path)) if ca_path else None

    def get(self, path: str, deadline: float) -> tuple[bytes, str]:
        """The body and Content-Disposition of ``GET path``, retried until ``deadline``."""
        url = self.base_url + path
        delay = 0.2
        while True:
            request = urllib.request.Request(url, headers=self.headers)
            try:
                with urllib.request.urlopen(request, context=self.context, timeout=30) as reply:
                    return reply.read(), reply.headers.get("Content-Disposition", "")
            except urllib.error.HTTPError as error:
                if error.code < 500 or time.monotonic() > deadline:
                    detail = error.read().decode("utf-8", "replace")[:300]
                    raise FetchError(f"GET {url} answered {error.code}: {detail}") from None
                reason = f"{error.code}"
            except (urllib.error.URLError, OSError) as error:
                if time.monotonic() > deadline:
                    raise FetchError(f"GET {url} failed: {describe(error)}") from None
                reason = describe(error)
            log.warning("GET %s failed (%s); retrying in %.1f s", url, reason, delay)
            time.sleep(delay)
            delay = min(5.0, delay * 2)


def fetch_function(args: argparse.Namespace, token: str | None) -> tuple[FunctionRecord, Path]:
    """The function's record (at ``--function-version``) and a local copy of its package."""
    admin = AdminClient(args.admin_url, token, args.tls_trust_cert_path)
    deadline = time.monotonic() + args.fetch_timeout_seconds
    names = "/".join(urllib.parse.quote(part, safe="") for part in
                     (args.tenant, args.namespace, args.name))  # fmt: skip
    body, _ = admin.get(f"/admin/v3/functions/{names}", deadline)
    try:
        config = function_config_from_mapping(msgspec.json.decode(body))
    except Exception as error:  # noqa: BLE001 - one sentence
        raise FetchError(f"the worker sent a function config that does not load: {error}") from None
    package, disposition = admin.get(f"/admin/v3/functions/{names}/download", deadline)
    match = re.search(r'filename="?([^";]+)"?', disposition)
    file_name = Path(match.group(1)).name if match else "function.py"
    target = args.work_dir / "package" / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(package)
    fqfn = fqfn_of(args.tenant, args.namespace, args.name)
    record = FunctionRecord(
        fqfn=fqfn,
        version=args.function_version,
        config=config,
        create_time_ms=args.function_create_time_ms,
    )
    return record, target


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pod's instance until stopped; returns the exit code."""
    args = parse_args(argv)
    configure_logging()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    index = ordinal_of(args.pod_name)
    token = args.auth_token_file.read_text().strip() if args.auth_token_file else None
    try:
        record, package = fetch_function(args, token)
    except FetchError as error:
        log.error("cannot fetch the function: %s", error)
        return EXIT_START_FAILED
    client_settings = ClientSettings(
        service_url=args.service_url,
        auth_plugin=TOKEN_PLUGIN if args.auth_token_file else None,
        auth_params=f"file://{args.auth_token_file}" if args.auth_token_file else None,
        tls_trust_certs_file_path=str(args.tls_trust_cert_path)
        if args.tls_trust_cert_path
        else None,
    )
    spec = InstanceSpec(
        instance=instance_id_of(record.fqfn, index),
        index=index,
        function=record,
        package_path=package,
        worker_id=args.pod_name,
        client=client_settings,
        secrets_provider=args.secrets_provider,
        cluster_name=args.cluster_name,
        state=StateSettings(namespace=args.state_namespace),
    )
    ports = PodPorts(address=args.bind_address, control=args.grpc_port, metrics=args.metrics_port)
    return run_instance(spec, stopping, args.stop_grace_seconds, ports)


class PodPorts(msgspec.Struct, frozen=True, kw_only=True):
    """Where the pod's control and metrics endpoints listen."""

    address: str
    control: int
    metrics: int | None = None


def view_of(host: InstanceHost, spec: InstanceSpec) -> InstanceView:
    """What the pod's endpoints read from the host."""
    return InstanceView(
        instance=str(spec.instance),
        cluster=spec.cluster_name,
        status=host.status,
        metrics=host.metrics,
        running=lambda: host.running,
    )


def run_instance(
    spec: InstanceSpec, stopping: threading.Event, grace: float, ports: PodPorts
) -> int:
    """Open and start the host, serve its endpoints, wait for a stop, close; the exit code."""
    try:
        client = make_client(spec.client, pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
    except Exception as error:  # noqa: BLE001 - one sentence in the log
        log.error("creating the pulsar client failed: %s", describe(error))
        return EXIT_START_FAILED
    host = InstanceHost(
        spec, client, state_log_for(spec, lambda: client), thread_name=str(spec.instance)
    )
    try:
        skip_consumer_ids(client, spec.function, spec.index)
        host.open()
    except InstanceStartError as error:
        log.error("instance failed to start: %s", error)
        close_quietly(client)
        permanent = isinstance(error.__context__, (PackageError, PlanError))
        return EXIT_LOAD_FAILED if permanent else EXIT_START_FAILED
    host.start()
    log.info("instance started: %s (version %d)", spec.instance, spec.function.version)
    try:
        server = serve_pod(view_of(host, spec), ports.address, ports.control, ports.metrics)
    except OSError as error:
        log.error("cannot listen on %s: %s", ports, describe(error))
        code = EXIT_START_FAILED
    else:
        code = wait_for_stop(host, stopping)
        server.close()
    host.request_stop()
    host.join(max(0.1, grace - 1.0))
    host.close()
    host.state.close()
    close_quietly(client)
    log.info("instance stopped: %s", spec.instance)
    return code


def wait_for_stop(host: InstanceHost, stopping: threading.Event) -> int:
    """Block until SIGTERM (exit 0) or until the message loop stops (exit 5)."""
    while not stopping.wait(TICK_SECONDS):
        if not host.running:
            log.error("instance message loop stopped: %s", host.error or "no reason given")
            return EXIT_LOOP_STOPPED
    return EXIT_STOPPED


if __name__ == "__main__":
    raise SystemExit(main())
