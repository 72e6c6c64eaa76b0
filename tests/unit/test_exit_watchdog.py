"""The instance process's exit watchdog: which stop order stands, why an instance
counts as orphaned, how a graceful stop splits its time, how long the instance
may take after the worker's SIGTERM; and, in a real child process, that the kernel
timer ends a process whose Python threads cannot run (a C call holding the GIL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from fnworker.runtimes.process.exit_watchdog import (
    StopOrder,
    join_budget,
    orphaned_because,
    tighter,
)
from fnworker.runtimes.process.settings import instance_stop_grace


def order(deadline: float, reason: str = "r") -> StopOrder:
    return StopOrder(reason=reason, code=0, deadline=deadline, grace=1.0)


def test_the_earliest_deadline_stands() -> None:
    assert tighter(None, order(10.0))
    assert tighter(order(10.0), order(9.0))
    assert not tighter(order(10.0), order(10.0))
    assert not tighter(order(10.0), order(11.0))


def test_orphaned_because_names_the_first_sign_of_a_missing_worker() -> None:
    def because(parent_now: int, death: bool = False, hung_up: bool = False) -> str | None:
        return orphaned_because(100, parent_now, parent_death_signal=death, channel_hung_up=hung_up)

    assert because(100) is None
    assert because(1) == "the worker process (pid 100) is gone"
    assert because(1, death=True, hung_up=True) == "the worker process (pid 100) is gone"
    assert because(100, death=True) == (
        "the worker (pid 100) stopped supervising this instance (parent-death signal)"
    )
    assert because(100, hung_up=True) == "the worker closed the control channel"


def test_a_graceful_stop_keeps_time_to_close() -> None:
    assert join_budget(deadline=11.0, now=10.0) == 0.5  # orphan: 1 s, half of it to close
    assert join_budget(deadline=14.0, now=10.0) == 3.5  # SIGTERM: 4 s, 0.5 s to close
    assert join_budget(deadline=10.2, now=10.0) == pytest.approx(0.1)
    assert join_budget(deadline=9.0, now=10.0) == 0.0


def test_the_instance_stops_by_itself_before_the_supervisor_kills_it() -> None:
    assert instance_stop_grace(5.0) == 4.0
    assert instance_stop_grace(2.0) == 1.0
    assert instance_stop_grace(1.0) == 0.5
    assert instance_stop_grace(0.0) == 0.0


GIL_HOG = """
import os, socket, sys
from fnworker.runtimes.process.exit_watchdog import ExitWatchdog
ours, theirs = socket.socketpair()
watchdog = ExitWatchdog(parent_pid=os.getppid(), channel=theirs, stop_grace_seconds=5.0)
watchdog.start()
watchdog.order_stop("a test", 0, 0.2)
sum(range(10**12))  # one C call that never releases the GIL: the watchdog cannot run
print("the process outlived its deadline")
"""


def test_the_kernel_timer_ends_a_process_whose_threads_cannot_run() -> None:
    began = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", GIL_HOG], stdout=subprocess.PIPE)
    try:
        child.wait(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGALRM
    assert child.stdout is not None and child.stdout.read() == b""
    assert time.monotonic() - began < 10
