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

from fnworker.coordination.embedded_broker import EmbeddedBroker, start_embedded_broker
from fnworker.coordination.memory import MemoryCluster, MemoryCoordination
from fnworker.runtimes.registry import check_available
from fnworker.scheduler.config_loader import load_worker_config
from fnworker.scheduler.logging_setup import configure_logging
from fnworker.scheduler.worker_config import ConfigError, WorkerConfig, runtime_name
from fnworker.scheduler.worker_service import RunningWorker, serve_worker

log = structlog.get_logger("fnworker.launch")


def load_or_explain(config_path: Path | None) -> WorkerConfig | None:
    """The validated config, or None after printing the one-sentence reason."""
    try:
        loaded = load_worker_config(config_path, os.environ)
        check_available(runtime_name(loaded.config))
    except ConfigError as error:
        print(f"fnworker: {error}", file=sys.stderr)
        return None
    for warning in loaded.warnings:
        log.warning(warning)
    return loaded.config


def sets_service_url(config_path: Path | None, environ: Mapping[str, str]) -> bool:
    """True when the user named a broker: pulsarServiceUrl in the file or the env."""
    if "FNWORKER_pulsarServiceUrl" in environ:
        return True
    if config_path is None:
        return False
    raw = yaml.safe_load(config_path.read_text()) or {}
    return isinstance(raw, dict) and raw.get("pulsarServiceUrl") is not None


async def run_until_signalled(
    config: WorkerConfig, bind_address: str, on_ready: object = None
) -> None:
    """Serve one worker (memory coordination) until SIGINT or SIGTERM."""
    backend = MemoryCoordination(MemoryCluster())
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
    if config is None:
        return 2
    anyio.run(run_until_signalled, config, bind_address)
    return 0
