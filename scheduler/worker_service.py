"""The composition root of one worker: builds the runtime driver, the admin, the
HTTP API and the loops from a validated WorkerConfig and runs them all under one
anyio task group. Cancelling the group stops everything, cleanly and shielded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
import msgspec
import structlog
from aiohttp import web
from anyio.abc import TaskStatus

from fnworker.coordination.backend import CoordinationBackend
from fnworker.coordination.embedded_broker import free_loopback_port
from fnworker.runtimes.driver import ClientSettings, InstanceSpec
from fnworker.runtimes.registry import create_driver
from fnworker.scheduler.api.app import make_app
from fnworker.scheduler.functions_admin import WorkerFunctionsAdmin
from fnworker.scheduler.package_store import PackageStore
from fnworker.scheduler.reconcile import ReplaceInstance, StartInstance
from fnworker.scheduler.records import WorkerInfo, split_fqfn, split_instance_id
from fnworker.scheduler.worker_config import (
    WorkerConfig,
    broker_client_settings,
    effective_worker_id,
    runtime_factory_config,
    runtime_name,
    scheduler_strategy,
)
from fnworker.scheduler.worker_loops import (
    LocalAssignments,
    Reconciler,
    Wakeup,
    lead,
    pump_events,
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


def client_settings_of(config: WorkerConfig) -> ClientSettings:
    """The broker settings instances use: the worker's own, after Pulsar's fallbacks."""
    broker = broker_client_settings(config)
    return ClientSettings(
        service_url=broker.service_url,
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
        self, config: WorkerConfig, me: WorkerInfo, packages: PackageStore, client: ClientSettings
    ) -> None:
        self.config = config
        self.me = me
        self.packages = packages
        self.client = client

    def __call__(
        self, action: StartInstance | ReplaceInstance, instances_dir: Path
    ) -> InstanceSpec:
        """The spec for one instance start; copies the package into the instance's folder."""
        record = action.function
        fqfn, index = split_instance_id(action.instance)
        if record.package is None:
            raise ValueError(f"function {fqfn} has no package to run")
        folder = instances_dir.joinpath(*split_fqfn(fqfn), str(index), f"v{record.version}")
        return InstanceSpec(
            instance=action.instance,
            index=index,
            function=record,
            package_path=self.packages.copy_for_instance(record.package, folder),
            worker_id=self.me.worker_id,
            client=self.client,
            secrets_provider=secrets_provider_of(self.config),
            cluster_name=self.config.pulsar_functions_cluster,
        )


async def serve_worker(
    config: WorkerConfig,
    backend: CoordinationBackend,
    *,
    bind_address: str,
    task_status: TaskStatus[RunningWorker] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run one worker until cancelled: HTTP API, coordination, leader and reconciler."""
    state = Path(config.state_directory).resolve()
    for folder in ("packages", "instances", "scratch"):
        (state / folder).mkdir(parents=True, exist_ok=True)
    if not config.worker_port:
        config = msgspec.structs.replace(config, worker_port=free_loopback_port())
    port = config.worker_port or 0
    me = WorkerInfo(
        worker_id=effective_worker_id(config), worker_hostname=config.worker_hostname, port=port
    )
    client = client_settings_of(config)
    packages = PackageStore(state / "packages")
    factory = runtime_factory_config(config)
    driver = create_driver(runtime_name(config), factory, client)
    admin = WorkerFunctionsAdmin(
        me=me,
        backend=backend,
        driver=driver,
        packages=packages,
        scratch_dir=state / "scratch",
        client_settings=client,
        max_package_bytes=config.max_package_size_bytes,
    )
    runner = web.AppRunner(make_app(admin, max_body_bytes=config.max_request_body_bytes))
    await runner.setup()
    mine = LocalAssignments()
    reconciler = Reconciler(
        backend, driver, mine, SpecMaker(config, me, packages, client), state / "instances"
    )
    try:
        site = web.TCPSite(runner, bind_address, port)
        await site.start()
        admin_url = f"http://{bind_address}:{port}"
        events = await backend.join(me)
        admin.ready = True
        log.info("worker started", worker=me.worker_id, url=admin_url, runtime=driver.name)
        leader_wakeup, reconcile_wakeup = Wakeup(), Wakeup()
        async with anyio.create_task_group() as group:
            group.start_soon(pump_events, events, mine, leader_wakeup, reconcile_wakeup)
            group.start_soon(lead, backend, me, scheduler_strategy(config), leader_wakeup)
            group.start_soon(reconciler.run, reconcile_wakeup)
            task_status.started(RunningWorker(info=me, admin_url=admin_url, admin=admin))
    finally:
        with anyio.CancelScope(shield=True):
            await shut_down(backend, reconciler, admin, runner)


async def shut_down(
    backend: CoordinationBackend,
    reconciler: Reconciler,
    admin: WorkerFunctionsAdmin,
    runner: web.AppRunner,
) -> None:
    """Leave the fleet, stop every instance, close clients and the HTTP server."""
    admin.ready = False
    await backend.leave()
    await reconciler.stop_all()
    await reconciler.driver.aclose()
    await admin.aclose()
    await runner.cleanup()
    log.info("worker stopped")
