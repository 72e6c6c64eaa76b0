"""Starts a worker process from the command line: loads and checks the config,
starts the embedded broker for standalone mode, runs the worker until SIGINT or
SIGTERM, and stops everything it started. The process edge of the program.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import NoReturn

import anyio
import msgspec
import structlog
import yaml

from fnworker.coordination.backend import CoordinationBackend
from fnworker.coordination.embedded_broker import (
    BrokerStartError,
    EmbeddedBroker,
    start_embedded_broker,
)
from fnworker.coordination.fleet_settings import FleetSettings
from fnworker.coordination.memory import MemoryCluster, MemoryCoordination
from fnworker.coordination.topics import cluster_topics
from fnworker.runtimes.broker_client import credential_problem, tls_problem
from fnworker.runtimes.registry import check_available, selects_token_provider
from fnworker.scheduler.security.web_security import load_web_security
from fnworker.scheduler.settings.config_loader import load_worker_config
from fnworker.scheduler.settings.logging_setup import configure_logging
from fnworker.scheduler.settings.tls import server_context
from fnworker.scheduler.settings.worker_config import (
    ConfigError,
    WorkerConfig,
    runtime_name,
    web_tls_enabled,
)
from fnworker.scheduler.worker.worker_service import RunningWorker, client_settings_of, serve_worker

log = structlog.get_logger("fnworker.launch")

STOP_BOUND_SECONDS = 10.0
"""A worker told to stop (SIGTERM, Ctrl-C) exits within this many seconds, whatever
its instances are doing; the runtimes stop instances gracefully within their own
shorter bound first (docs/architecture.md, Decisions)."""


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


MEMORY_WARNING = (
    "coordinationBackend is memory: registered functions live only in this process "
    "and are lost when it stops; use pulsar (the default) to keep them"
)


def coordination_for(config: WorkerConfig) -> CoordinationBackend:
    """The coordination backend ``coordinationBackend`` names, for this worker's cluster.

    ``memory`` is for tests and simulations: it is only ever chosen explicitly, and
    a worker started on it says at start that it keeps nothing."""
    if config.coordination_backend == "memory":
        log.warning(MEMORY_WARNING)
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
    from fnworker.coordination.metadata_snapshot import SnapshotSettings
    from fnworker.coordination.pulsar_backend import PulsarCoordination

    snapshots = SnapshotSettings(
        every=config.function_metadata_snapshot_every_records,
        max_bytes=config.function_metadata_snapshot_max_bytes,
    )
    return PulsarCoordination(settings, topics, snapshots=snapshots)


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
        handoff_seconds = config.graceful_handoff_timeout_ms / 1000
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for received in signals:
                log.info(
                    "signal received, stopping",
                    signal=received.name,
                    bound_seconds=STOP_BOUND_SECONDS + handoff_seconds,
                )
                break
            exit_after(STOP_BOUND_SECONDS + handoff_seconds)
            await hand_off_unless_signalled(worker, signals)
        group.cancel_scope.cancel()


async def hand_off_unless_signalled(
    worker: RunningWorker, signals: AsyncIterator[signal.Signals]
) -> None:
    """A graceful stop's hand-off (``gracefulHandoffTimeoutMs``, skipped by a worker
    alone); a second stop signal cuts it short."""
    if worker.hand_off is None:
        return
    async with anyio.create_task_group() as group:

        async def second_signal() -> None:
            async for _ in signals:
                log.info("second stop signal: stopping without finishing the hand-off")
                group.cancel_scope.cancel()

        group.start_soon(second_signal)
        await worker.hand_off()
        group.cancel_scope.cancel()


def exit_process(code: int) -> NoReturn:
    """End the process with ``code`` once the worker has stopped everything it owns:
    flush the logs and standard streams, then skip the interpreter's teardown, where
    the pulsar C++ client aborts the process (SIGABRT, "terminate called without an
    active exception") when an instance thread abandoned at stop still holds a client
    with a call pending (a subscribe to thousands of topics, a call in user code)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exit_after(seconds: float) -> threading.Timer:
    """Make the process exit ``seconds`` from now even if stopping hangs (an instance
    stuck in user code or in a blocking client call): the last resort behind every
    part's own graceful-stop bound, so a stop signal always ends the worker in time."""

    def give_up() -> None:
        log.error("stopping took too long; exiting now", bound_seconds=seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return timer


def standalone_worker_id(state: Path) -> str:
    """The id a standalone worker keeps across restarts: made once, kept in the state
    directory, so a restart (on any port) finds its own assignments again."""
    id_file = state / "worker-id"
    if id_file.exists():
        kept = id_file.read_text().strip()
        if kept:
            return kept
    state.mkdir(parents=True, exist_ok=True)
    made = f"standalone-{socket.gethostname().split('.')[0]}-{secrets.token_hex(3)}"
    write_atomically(id_file, made)
    return made


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a crash leaves the old file or the new one."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


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
    if not config.worker_id:
        changes["worker_id"] = standalone_worker_id(state)
    if port is not None:
        changes["worker_port"] = port
    if broker_url:
        changes["pulsar_service_url"] = broker_url
    config = msgspec.structs.replace(config, **changes)
    broker: EmbeddedBroker | None = None
    if not broker_url and not sets_service_url(config_path, os.environ):
        try:
            broker = start_embedded_broker(state / "broker")
        except BrokerStartError as error:
            print(f"fnworker: {error}.", file=sys.stderr)
            return 2
        config = msgspec.structs.replace(config, pulsar_service_url=broker.url)
        log.info("embedded broker started", url=broker.url, pid=broker.pid)
    try:
        if not check_security(config):
            return 2
        on_ready = None
        if demo:
            from fnworker.scheduler.worker.demo import demo_task

            on_ready = demo_task(demo_messages)
        anyio.run(run_until_signalled, config, "127.0.0.1", on_ready)
    finally:
        if broker is not None:
            broker.stop()
            log.info("embedded broker stopped")
    exit_process(0)


def run_worker(config_path: Path, bind_address: str = "0.0.0.0") -> int:
    """``fnworker worker --config FILE``: one worker against the configured broker."""
    configure_logging()
    config = load_or_explain(config_path)
    if config is None or not check_security(config):
        return 2
    anyio.run(run_until_signalled, config, bind_address)
    exit_process(0)
