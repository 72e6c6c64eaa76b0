"""The composition root of one worker: builds the runtime driver, the admin, the
HTTP API and the loops from a validated WorkerConfig and runs them all under one
anyio task group. Cancelling the group stops everything, cleanly and shielded.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import msgspec
import structlog
from aiohttp import web
from anyio.abc import TaskStatus

from fnworker.coordination.backend import CoordinationBackend, GracefulHandOff
from fnworker.coordination.embedded_broker import free_loopback_port
from fnworker.runtimes.broker_client import with_tls_scheme
from fnworker.runtimes.driver import RuntimeDriver
from fnworker.runtimes.registry import create_auth_provider, create_driver
from fnworker.scheduler.model.instances import ClientSettings, InstanceSpec, StateSettings

if TYPE_CHECKING:
    from fnworker.runtimes.kubernetes.auth_provider import KubernetesSecretsTokenAuthProvider
from fnworker.scheduler.admin.fleet_admin import FleetAdmin
from fnworker.scheduler.admin.forwarding import Forwarder
from fnworker.scheduler.admin.functions_admin import WorkerFunctionsAdmin
from fnworker.scheduler.admin.leader_control import LeaderControl, Wakeup
from fnworker.scheduler.admin.package_store import PackageStore
from fnworker.scheduler.api.app import make_app
from fnworker.scheduler.api.connection_guard import (
    ConnectionGuard,
    guarded_runner,
    guarded_site,
    http_limits,
)
from fnworker.scheduler.api.openapi_constraints import schema_bounds
from fnworker.scheduler.api.route_table import METRICS_REGISTRY, UPLOAD_DIR
from fnworker.scheduler.api.uploads_routes import UPLOADS_DIR
from fnworker.scheduler.decide.admission_limits import AdmissionMemo, limits_of
from fnworker.scheduler.decide.assignment_plan import CHANGE_REASONS
from fnworker.scheduler.decide.auto_rebalance import policy_of
from fnworker.scheduler.decide.reconcile import ReplaceInstance, StartInstance
from fnworker.scheduler.model.prometheus import AssignmentChangeCounter, metrics_registry
from fnworker.scheduler.model.records import PackageRef, WorkerInfo, split_instance_id
from fnworker.scheduler.security.web_security import load_web_security
from fnworker.scheduler.settings.tls import server_context
from fnworker.scheduler.settings.worker_config import (
    WorkerConfig,
    broker_client_settings,
    effective_worker_id,
    runtime_factory_config,
    runtime_name,
    scheduler_strategy,
    web_tls_enabled,
)
from fnworker.scheduler.worker.broker_detection import with_broker_workarounds
from fnworker.scheduler.worker.handoff_loops import confirm_handed_over, hand_off
from fnworker.scheduler.worker.worker_loops import (
    LocalAssignments,
    Reconciler,
    instance_folder,
    lead,
    pump_events,
    remove_folder,
)

log = structlog.get_logger("fnworker.worker")

KUBERNETES_SECRETS = (
    "org.apache.pulsar.functions.secretsproviderconfigurator.KubernetesSecretsProviderConfigurator"
)


@dataclass(frozen=True)
class RunningWorker:
    """What a started worker tells its starter: who it is and where it listens."""

    info: WorkerInfo
    admin_url: str
    admin: WorkerFunctionsAdmin
    hand_off: Callable[[], Awaitable[bool]] | None = None
    """A graceful stop's first step: hand the instances to the others (bounded by
    ``gracefulHandoffTimeoutMs``); True when every one was. Then cancel the worker."""


def graceful_hand_off(
    config: WorkerConfig, backend: CoordinationBackend, client: ClientSettings
) -> Callable[[], Awaitable[bool]] | None:
    """What ``RunningWorker.hand_off`` does for this backend (None: it cannot).

    On pulsar-lite (``client.consumer_id_slots``), only the thread runtime gives two
    copies of one instance different consumer ids; a process or Kubernetes copy
    takes its instance index as its id, so the new copy's subscribe is refused
    ("Consumer 0 already exists") until the old one stops: no hand-off there."""
    if not isinstance(backend, GracefulHandOff):
        return None
    if client.consumer_id_slots and runtime_name(config) != "thread":
        log.info(
            "start-up: graceful hand-off off",
            reason="on pulsar-lite two copies of one instance of this runtime clash",
            runtime=runtime_name(config),
        )
        return None
    handing: GracefulHandOff = backend
    timeout = config.graceful_handoff_timeout_ms / 1000

    async def run() -> bool:
        return await hand_off(handing, timeout)

    return run


def client_settings_of(config: WorkerConfig) -> ClientSettings:
    """The broker settings instances use: the worker's own, after Pulsar's fallbacks."""
    broker = broker_client_settings(config)
    return ClientSettings(
        service_url=with_tls_scheme(broker.service_url, config.use_tls),
        auth_plugin=broker.authentication_plugin if broker.authentication_enabled else None,
        auth_params=broker.authentication_parameters if broker.authentication_enabled else None,
        tls_trust_certs_file_path=broker.trust_certs_file_path,
        tls_allow_insecure_connection=broker.allow_insecure_connection,
        tls_hostname_verification=broker.enable_hostname_verification,
    )


def secrets_provider_of(config: WorkerConfig) -> str:
    """The instance-side secrets provider the configured configurator implies."""
    if config.secrets_provider_configurator_class_name in (KUBERNETES_SECRETS, "kubernetes"):
        return "environment"
    return "clear-text"


class SpecMaker:
    """Turns a start decision into an InstanceSpec with the instance's own package copy."""

    def __init__(
        self,
        config: WorkerConfig,
        me: WorkerInfo,
        packages: PackageStore,
        client: ClientSettings,
        backend: CoordinationBackend,
    ) -> None:
        self.backend = backend
        self.config = config
        self.me = me
        self.packages = packages
        self.client = client
        self._fetching: dict[str, anyio.Lock] = {}
        self._unpacking: dict[str, anyio.Lock] = {}
        self.limits = limits_of(config).package

    async def ensure_stored(self, package: PackageRef) -> None:
        """Fetch a package another worker stored, once even when several of its
        instances start at the same time."""
        stored = self.packages.path_of(package)
        async with self._fetching.setdefault(package.sha256, anyio.Lock()):
            if not stored.exists():
                await self.backend.fetch_package(package, stored)

    async def __call__(
        self, action: StartInstance | ReplaceInstance, instances_dir: Path
    ) -> InstanceSpec:
        """The spec for one instance start; fetches the package if another worker stored
        it, and copies it into the instance's own folder."""
        record = action.function
        fqfn, index = split_instance_id(action.instance)
        if record.package is None:
            raise ValueError(f"function {fqfn} has no package to run")
        await self.ensure_stored(record.package)
        own = instance_folder(instances_dir, action.instance)
        await anyio.to_thread.run_sync(remove_folder, own)  # an older version's files
        folder = own / f"v{record.version}"
        package_copy = self.packages.copy_for_instance(record.package, folder)
        if runtime_name(self.config) != "kubernetes":  # pods unpack their own download
            async with self._unpacking.setdefault(record.package.sha256, anyio.Lock()):
                await anyio.to_thread.run_sync(
                    self.packages.share_unpacked, record.package, package_copy, self.limits
                )
        return InstanceSpec(
            instance=action.instance,
            index=index,
            function=record,
            package_path=package_copy,
            worker_id=self.me.worker_id,
            client=self.client,
            secrets_provider=secrets_provider_of(self.config),
            cluster_name=self.config.pulsar_functions_cluster,
            state=StateSettings(namespace=self.config.pulsar_functions_namespace),
            package_limits=self.limits,
        )


TRANSIENT_FOLDERS = ("instances", "scratch")
"""State folders that only hold files of a running worker (instance copies of
packages, uploads being read); emptied at start, so a killed worker leaves nothing."""


def prepare_state(config: WorkerConfig) -> tuple[WorkerConfig, Path]:
    """Create the state folders, emptying the transient ones a previous (perhaps
    killed) run left; give a worker without a plain or TLS port a free one."""
    state = Path(config.state_directory).resolve()
    for folder in TRANSIENT_FOLDERS:
        remove_folder(state / folder)
    for folder in ("packages", *TRANSIENT_FOLDERS):
        (state / folder).mkdir(parents=True, exist_ok=True)
    if not config.worker_port and not web_tls_enabled(config):
        config = msgspec.structs.replace(config, worker_port=free_loopback_port())
    return config, state


def identity_of(config: WorkerConfig) -> WorkerInfo:
    """Who this worker is to the fleet: its id, host and the port it answers on."""
    port = config.worker_port or config.worker_port_tls or 0
    return WorkerInfo(
        worker_id=effective_worker_id(config), worker_hostname=config.worker_hostname, port=port
    )


def http_app(
    config: WorkerConfig,
    admin: WorkerFunctionsAdmin,
    driver: RuntimeDriver,
    changes: AssignmentChangeCounter | None = None,
) -> web.Application:
    """The REST API with the configured security, body limits and metrics."""
    app = make_app(
        admin,
        max_body_bytes=config.max_request_body_bytes,
        max_package_bytes=config.max_package_size_bytes,
        security=load_web_security(config, os.environ),
        guard=ConnectionGuard(http_limits(config)),
        bounds=schema_bounds(config),
    )
    app[METRICS_REGISTRY] = metrics_registry([driver], config.pulsar_functions_cluster, changes)
    app[UPLOAD_DIR] = Path(config.state_directory).resolve() / "scratch"
    app[UPLOADS_DIR] = Path(config.state_directory).resolve() / "uploads"
    return app


def runtime_of(
    config: WorkerConfig, state: Path, me: WorkerInfo, client: ClientSettings
) -> tuple[RuntimeDriver, KubernetesSecretsTokenAuthProvider | None]:
    """The runtime driver the config names, and the function auth provider it selects."""
    runtime = runtime_name(config)
    driver = create_driver(
        runtime,
        runtime_factory_config(config),
        client,
        state_dir=state,
        worker_id=me.worker_id,
        config=config,
    )
    return driver, create_auth_provider(config, runtime, driver)


async def serve_worker(
    config: WorkerConfig,
    backend: CoordinationBackend,
    *,
    bind_address: str,
    task_status: TaskStatus[RunningWorker] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run one worker until cancelled: HTTP API, coordination, leader and reconciler."""
    config, state = prepare_state(config)
    me = identity_of(config)
    log.info("worker starting", worker=me.worker_id, pid=os.getpid())
    client = await with_broker_workarounds(config, client_settings_of(config))
    packages = PackageStore(state / "packages")
    driver, auth_provider = runtime_of(config, state, me, client)
    leader_wakeup, reconcile_wakeup = Wakeup(), Wakeup()
    control = LeaderControl(leader_wakeup)
    admission = AdmissionMemo(limits_of(config))
    admin = WorkerFunctionsAdmin(
        me=me,
        backend=backend,
        driver=driver,
        packages=packages,
        scratch_dir=state / "scratch",
        client_settings=client,
        max_package_bytes=config.max_package_size_bytes,
        fleet=FleetAdmin(me, backend, driver, control, Forwarder()),
        admission=admission,
        auth_provider=auth_provider,
    )
    changes = AssignmentChangeCounter(CHANGE_REASONS)
    runner = guarded_runner(http_app(config, admin, driver, changes))
    await runner.setup()
    mine = LocalAssignments()
    reconciler = Reconciler(
        backend,
        driver,
        mine,
        SpecMaker(config, me, packages, client, backend),
        state / "instances",
        admission,
    )
    try:
        admin_url = (await start_sites(runner, config, bind_address))[0]
        log.info("start-up: REST API listening", url=admin_url)
        async with anyio.create_task_group() as group:
            await group.start(driver.run)  # the driver's background tasks (watches, ...)
            events = await group.start(backend.run, me)
            admin.ready = True
            log.info("worker started", worker=me.worker_id, url=admin_url, runtime=driver.name)
            group.start_soon(pump_events, events, mine, leader_wakeup, reconcile_wakeup)
            strategy = scheduler_strategy(config)
            group.start_soon(
                lead,
                backend,
                me,
                strategy,
                leader_wakeup,
                control,
                admission,
                changes,
                policy_of(config),
            )
            group.start_soon(reconciler.run, reconcile_wakeup)
            if isinstance(backend, GracefulHandOff):
                group.start_soon(confirm_handed_over, backend, driver)
            started = RunningWorker(
                info=me,
                admin_url=admin_url,
                admin=admin,
                hand_off=graceful_hand_off(config, backend, client),
            )
            task_status.started(started)
    finally:
        with anyio.CancelScope(shield=True):
            await shut_down(reconciler, admin, runner)


async def start_sites(runner: web.AppRunner, config: WorkerConfig, bind_address: str) -> list[str]:
    """Plain HTTP on ``workerPort`` (when set) and HTTPS on ``workerPortTls`` (when
    ``tlsEnabled``); the URLs served, plain first."""
    urls: list[str] = []
    if config.worker_port:
        await guarded_site(runner, bind_address, config.worker_port).start()
        urls.append(f"http://{bind_address}:{config.worker_port}")
    if web_tls_enabled(config):
        context = server_context(config)
        await guarded_site(
            runner, bind_address, config.worker_port_tls, ssl_context=context
        ).start()
        urls.append(f"https://{bind_address}:{config.worker_port_tls}")
    return urls


async def shut_down(
    reconciler: Reconciler,
    admin: WorkerFunctionsAdmin,
    runner: web.AppRunner,
) -> None:
    """Stop every instance, close clients and the HTTP server (the backend has left)."""
    admin.ready = False
    await reconciler.stop_all()
    await reconciler.driver.aclose()
    await admin.aclose()
    await runner.cleanup()
    log.info("worker stopped")
