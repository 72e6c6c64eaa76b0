"""Starts a worker process from the command line: loads and checks the config,
starts the embedded broker for standalone mode, runs the worker until SIGINT or
SIGTERM, and stops everything it started. The process edge of the program.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import anyio
import msgspec
import structlog
import yaml

from fnworker.coordination.backend import CoordinationBackend
from fnworker.coordination.embedded_broker import EmbeddedBroker, start_embedded_broker
from fnworker.coordination.fleet_settings import FleetSettings
from fnworker.coordination.memory import MemoryCluster, MemoryCoordination
from fnworker.coordination.topics import cluster_topics
from fnworker.runtimes.broker_client import credential_problem, tls_problem
from fnworker.runtimes.registry import check_available, selects_token_provider
from fnworker.scheduler.auth.settings import load_web_security
from fnworker.scheduler.config_loader import load_worker_config
from fnworker.scheduler.logging_setup import configure_logging
from fnworker.scheduler.tls import server_context
from fnworker.scheduler.worker_config import (
    ConfigError,
    WorkerConfig,
    runtime_name,
    web_tls_enabled,
)
from fnworker.scheduler.worker_service import RunningWorker, client_settings_of, serve_worker

log = structlog.get_logger("fnworker.launch")


def load_or_explain(config_path: Path | None) -> WorkerConfig | None:
    """The validated config, or None after printing the one-sentence reason."""
    try:
        loaded = load_worker_config(config_path, os.environ)
        check_available(runtime_name(loaded.config))
        selects_token_provider(loaded.config, runtime_name(loaded.config))
    except ConfigError as error:
        print(f"fnworker: {error}", file=sys.stderr)
        return None
    for warning in loaded.warnings:
        log.warning(warning)
    return loaded.config


def check_security(config: WorkerConfig) -> bool:
    """Read the token key and the TLS files, and try a pulsar+ssl:// broker's TLS
    handshake, so a mistake is one sentence at start; False after printing it."""
    try:
        load_web_security(config, os.environ)
        if web_tls_enabled(config):
            server_context(config)
    except ConfigError as error:
        print(f"fnworker: {error}", file=sys.stderr)
        return False
    broker = client_settings_of(config)
    problem = credential_problem(broker)
    if problem is None:
        problem = tls_problem(broker)
        problem = f"pulsarServiceUrl: {problem}" if problem else None
    if problem is not None:
        print(f"fnworker: {problem}.", file=sys.stderr)
        return False
    return True


def sets_service_url(config_path: Path | None, environ: Mapping[str, str]) -> bool:
    """True when the user named a broker: pulsarServiceUrl in the file or the env."""
    if "FNWORKER_pulsarServiceUrl" in environ:
        return True
    if config_path is None:
        return False
    raw = yaml.safe_load(config_path.read_text()) or {}
    return isinstance(raw, dict) and raw.get("pulsarServiceUrl") is not None


def coordination_for(config: WorkerConfig) -> CoordinationBackend:
    """The coordination backend ``coordinationBackend`` names, for this worker's cluster."""
    if config.coordination_backend == "memory":
        return MemoryCoordination(MemoryCluster())
    settings = FleetSettings(
        service_url=config.pulsar_service_url,
        heartbeat_interval=config.heartbeat_interval_ms / 1000,
        dead_timeout=config.worker_dead_timeout_ms / 1000,
        lease_renew=config.lease_renew_ms / 1000,
        lease_timeout=config.lease_timeout_ms / 1000,
        client_log_file=str(Path(config.state_directory).resolve() / "pulsar-client.log"),
    )
    topics = cluster_topics(
        config.pulsar_functions_namespace,
        metadata=config.function_metadata_topic_name,
        assignments=config.function_assignment_topic_name,
        coordinate=config.cluster_coordination_topic_name,
    )
    from fnworker.coordination.pulsar_backend import PulsarCoordination

    return PulsarCoordination(settings, topics)


async def run_until_signalled(
    config: WorkerConfig, bind_address: str, on_ready: object = None
) -> None:
    """Serve one worker until SIGINT or SIGTERM."""
    Path(config.state_directory).mkdir(parents=True, exist_ok=True)
    backend = coordination_for(config)
    async with anyio.create_task_group() as group:
        worker: RunningWorker = await group.start(
            functools.partial(serve_worker, config, backend, bind_address=bind_address)
        )
        if callable(on_ready):
            group.start_soon(on_ready, worker, config)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for received in signals:
                log.info("signal received, stopping", signal=received.name)
                break
        group.cancel_scope.cancel()


def run_standalone(
    *,
    config_path: Path | None = None,
    state_dir: Path | None = None,
    port: int | None = None,
    broker_url: str | None = None,
    demo: bool = False,
    demo_messages: int = 30,
) -> int:
    """``fnworker standalone``: embedded broker + one worker (+ the demo function)."""
    configure_logging()
    config = load_or_explain(config_path)
    if config is None:
        return 2
    state = (state_dir or Path(config.state_directory)).resolve()
    changes: dict[str, object] = {"state_directory": str(state)}
    if config_path is None:
        changes["coordination_backend"] = "memory"
    if port is not None:
        changes["worker_port"] = port
    if broker_url:
        changes["pulsar_service_url"] = broker_url
    config = msgspec.structs.replace(config, **changes)
    broker: EmbeddedBroker | None = None
    if not broker_url and not sets_service_url(config_path, os.environ):
        broker = start_embedded_broker(state / "broker")
        config = msgspec.structs.replace(config, pulsar_service_url=broker.url)
        log.info("embedded broker started", url=broker.url, pid=broker.pid)
    try:
        if not check_security(config):
            return 2
        on_ready = None
        if demo:
            from fnworker.scheduler.demo import demo_task

            on_ready = demo_task(demo_messages)
        anyio.run(run_until_signalled, config, "127.0.0.1", on_ready)
    finally:
        if broker is not None:
            broker.stop()
            log.info("embedded broker stopped")
    return 0


def run_worker(config_path: Path, bind_address: str = "0.0.0.0") -> int:
    """``fnworker worker --config FILE``: one worker against the configured broker."""
    configure_logging()
    config = load_or_explain(config_path)
    if config is None or not check_security(config):
        return 2
    anyio.run(run_until_signalled, config, bind_address)
    return 0
