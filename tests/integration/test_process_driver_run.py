"""The process driver's place in the worker's structured concurrency: its ``run``
(started in the worker's root task group) stops every supervisor when the group ends,
and the supervisor's deadlines come from the injected clock. Real instance processes;
every process started is ended by PID."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from anyio.from_thread import BlockingPortal

from fnworker.runtimes.process.driver import ProcessRuntime
from fnworker.runtimes.process.pid_files import start_ticks
from fnworker.runtimes.process.settings import ProcessSettings
from fnworker.scheduler.model.instances import InstanceSpec
from tests.integration.conftest import EXAMPLES, SpecMaker, wait_until

SILENT_ENTRY = "import time\ntime.sleep(120)\n"
"""An instance entry point that never answers the control channel (never Started)."""


def alive(pid: int | None) -> bool:
    return pid is not None and start_ticks(pid) is not None


@pytest.fixture
def silent_settings(tmp_path: Path) -> ProcessSettings:
    entry = tmp_path / "silent_main.py"
    entry.write_text(SILENT_ENTRY)
    return ProcessSettings(
        log_directory=tmp_path / "logs",
        state_directory=tmp_path / "state",
        python_instance_location=entry,
        stop_grace_seconds=2.0,
    )


@pytest.fixture
def silent_spec(make_spec: SpecMaker, unique_name: str) -> InstanceSpec:
    return make_spec(
        unique_name,
        EXAMPLES / "exclamation_function.py",
        class_name="exclamation_function.ExclamationFunction",
        inputs=[f"{unique_name}-in"],
    )


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """PIDs of instance processes to end (SIGKILL) after the test, whatever happened."""
    started: list[int] = []
    yield started
    for pid in started:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_ending_run_stops_every_supervised_process(
    portal: BlockingPortal,
    silent_settings: ProcessSettings,
    silent_spec: InstanceSpec,
    pids: list[int],
) -> None:
    driver = ProcessRuntime(silent_settings)
    running = portal.start_task_soon(driver.run)
    try:
        portal.call(driver.start, silent_spec)
        pid = driver.pid(silent_spec.instance)
        assert pid is not None
        pids.append(pid)
        assert alive(pid)
        running.cancel()  # the worker's root task group ends
        assert wait_until(lambda: not alive(pid), 10), "the instance outlived the driver's run"
    finally:
        portal.call(driver.aclose)


def test_the_start_deadline_is_read_from_the_injected_clock(
    portal: BlockingPortal,
    silent_settings: ProcessSettings,
    silent_spec: InstanceSpec,
    pids: list[int],
) -> None:
    """A 60 s start timeout passes in well under a second of real time when the
    injected clock runs fast (10 s per reading)."""
    fast = itertools.count(0.0, 10.0)
    driver = ProcessRuntime(silent_settings, clock=lambda: next(fast))
    try:
        portal.call(driver.start, silent_spec)
        pid = driver.pid(silent_spec.instance)
        assert pid is not None
        pids.append(pid)
        assert wait_until(
            lambda: "did not start within 60 s" in driver.status(silent_spec.instance).error,  # type: ignore[union-attr]
            10,
        ), driver.status(silent_spec.instance)
        assert wait_until(lambda: not alive(pid), 10)
    finally:
        portal.call(driver.aclose)
