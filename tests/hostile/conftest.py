"""Shared parts of the hostile-input suite: a memory-capped ``fnworker standalone``
per module with an ordinary function deployed beside the hostile requests, and the
checks that a refusal stored nothing and harmed nothing. Every process is stopped
by PID."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import StandaloneWorker, launch, stop, wait_ready
from tests.e2e.helpers import (
    BASE,
    call,
    register,
    running_count,
    trigger_until_answered,
    wait_for,
)

WORKER_MEMORY = 3 << 30
"""Address space a hostile-input worker (and its embedded broker) may take: far above
what it needs, far below what the issue's requests cost before the limits (24 GB)."""
ORDINARY = "ordinary"


def cap_memory() -> None:
    """Runs in the worker before it starts: at most WORKER_MEMORY of address space."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))


@contextmanager
def running_capped_worker(
    folder: Path, limits: dict[str, Any] | None = None, function: str | None = None
) -> Iterator[StandaloneWorker]:
    """A memory-capped ``fnworker standalone`` under ``folder``, with ``limits`` as its
    config (the defaults without), running ``function`` (the exclamation example) when
    given; stopped by PID on exit."""
    flags: list[str] = []
    if limits is not None:
        config = folder / "functions_worker.yml"
        config.write_text(yaml.safe_dump(limits))
        flags = ["--config", str(config)]
    worker = launch(folder / "state", *flags, preexec_fn=cap_memory)
    try:
        wait_ready(worker)
        if function is not None:
            assert register(worker.admin_url, function).status == 200
            wait_for(lambda: running_count(worker.admin_url, function) == 1)
        yield worker
    finally:
        stop(worker)


@pytest.fixture(scope="module")
def capped_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneWorker]:
    """A memory-capped standalone worker with the default limits, running ORDINARY."""
    with running_capped_worker(tmp_path_factory.mktemp("hostile"), function=ORDINARY) as worker:
        yield worker


def package_files(worker: StandaloneWorker, name: str) -> list[Path]:
    """Files the worker keeps for function ``name`` (packages and instance copies)."""
    state = worker.state_dir
    folders = [state / part / "public" / "default" / name for part in ("packages", "instances")]
    return [file for folder in folders if folder.exists() for file in folder.rglob("*")]


def scratch_files(worker: StandaloneWorker) -> list[Path]:
    """Upload files still in the worker's scratch folder."""
    scratch = worker.state_dir / "scratch"
    return [file for file in scratch.rglob("*") if file.is_file()] if scratch.exists() else []


def assert_nothing_stored(worker: StandaloneWorker, name: str) -> None:
    """GET answers 404, no package or instance file of the function exists, and the
    upload was not left in the scratch folder."""
    reply = call(worker.admin_url, "GET", f"{BASE}/{name}")
    assert reply.status == 404, (reply.status, reply.body)
    assert package_files(worker, name) == []
    wait_for(lambda: scratch_files(worker) == [], timeout=10)


def assert_unharmed(worker: StandaloneWorker) -> None:
    """The worker process is alive and the ordinary function still answers."""
    assert worker.process.poll() is None, worker.log_path.read_text()[-3000:]
    reply = trigger_until_answered(worker.admin_url, ORDINARY, "still-here")
    assert reply.status == 200, (reply.status, reply.body)
    assert reply.body == b"still-here!"
