"""Makes sure an instance process of the process runtime ends in time, whatever its
other threads are doing: blocked in a subscribe that will not return for 30 s,
inside user code that sleeps, blocked in the client, or in a slow close.

A daemon thread watches for the reasons to stop that need no help from the main
thread: the worker going away (the parent pid changes, the parent-death signal
``PARENT_DEATH_SIGNAL`` arrives, or the control channel hangs up) and a stop
signal (SIGTERM/SIGINT). Signals are seen through the signal wakeup fd, so a main
thread stuck in a C call cannot hide them. Every reason becomes a stop order
with a deadline; the main thread stops gracefully while the deadline allows, and
when it passes the watchdog logs why and calls ``os._exit``. A kernel timer
(SIGALRM with its default action) armed just after the deadline ends the process
even if no Python thread can run by then (a C call holding the GIL, a hang during
interpreter exit). Orphans get ``ORPHAN_GRACE_SECONDS``; a SIGTERM from the worker
gets the grace the worker sent in ``Boot``.

Decisions (``orphaned_because``, ``tighter``, ``join_budget``) are pure; the
watchdog itself does signal, socket and process I/O.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType

import msgspec

ORPHAN_GRACE_SECONDS = 1.0
"""How long an instance whose worker is gone may spend stopping gracefully."""
KERNEL_TIMER_MARGIN_SECONDS = 0.5
"""The kernel ends the process this long after a deadline the watchdog could not keep."""
CLOSE_RESERVE_SECONDS = 0.5
"""Of a graceful stop's time, what is kept for closing the consumer, producers and client."""
TICK_SECONDS = 0.1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PARENT_DEATH_SIGNAL = signal.SIGHUP
"""What the kernel sends when the worker thread that spawned the process ends
(``PR_SET_PDEATHSIG``): not SIGTERM, which the worker sends to stop an instance
with the full grace. The process has its own session, so no terminal sends it."""
EXIT_STOPPED = 0
EXIT_ORPHANED = 6

log = logging.getLogger("fnworker.instance.process")


class StopOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Why the process stops, its exit code, and when (monotonic seconds) it must be gone."""

    reason: str
    code: int
    deadline: float
    grace: float


def tighter(current: StopOrder | None, proposed: StopOrder) -> bool:
    """True if ``proposed`` must be obeyed sooner than the standing order (or there is none)."""
    return current is None or proposed.deadline < current.deadline


def orphaned_because(
    parent_pid: int, parent_now: int, *, parent_death_signal: bool, channel_hung_up: bool
) -> str | None:
    """Why this process has lost its worker, or None while it has one."""
    if parent_now != parent_pid:
        return f"the worker process (pid {parent_pid}) is gone"
    if parent_death_signal:
        return (
            f"the worker (pid {parent_pid}) stopped supervising this instance (parent-death signal)"
        )
    if channel_hung_up:
        return "the worker closed the control channel"
    return None


def join_budget(deadline: float, now: float) -> float:
    """Seconds to wait for the message loop, keeping time to close before ``deadline``."""
    left = deadline - now
    return max(0.0, left - min(CLOSE_RESERVE_SECONDS, left / 2))


def signal_name(number: int) -> str:
    """``SIGTERM`` for 15."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ExitWatchdog:
    """Ends this process by a deadline once a reason to stop comes up."""

    def __init__(
        self,
        *,
        parent_pid: int,
        channel: socket.socket,
        stop_grace_seconds: float,
        orphan_grace_seconds: float = ORPHAN_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.parent_pid = parent_pid
        self.stop_grace_seconds = stop_grace_seconds
        self.orphan_grace_seconds = orphan_grace_seconds
        self.clock = clock
        self.stopping = threading.Event()
        self._channel_fd = channel.fileno()
        self._order: StopOrder | None = None
        self._lock = threading.Lock()
        self._signalled = 0
        self._wakeup_read, self._wakeup_write = socket.socketpair()
        self._thread = threading.Thread(
            target=self._watch, name="fnworker-exit-watchdog", daemon=True
        )

    # -- called by the main thread ---------------------------------------------------

    def start(self) -> None:
        """Catch the stop signals and start watching (call from the main thread)."""
        for number in (*STOP_SIGNALS, PARENT_DEATH_SIGNAL):
            signal.signal(number, self._note_signal)
        for end in (self._wakeup_read, self._wakeup_write):
            end.setblocking(False)
        signal.set_wakeup_fd(self._wakeup_write.fileno(), warn_on_full_buffer=False)
        self._thread.start()

    @property
    def order(self) -> StopOrder | None:
        """The standing stop order, None while nothing asked this process to stop."""
        return self._order

    def order_stop(self, reason: str, code: int, grace: float) -> StopOrder:
        """Stop within ``grace`` s (or sooner if an earlier order says so); the standing order."""
        proposed = StopOrder(reason=reason, code=code, deadline=self.clock() + grace, grace=grace)
        with self._lock:
            changed = tighter(self._order, proposed)
            if changed:
                self._order = proposed
            standing = self._order
        assert standing is not None
        if changed:
            level = logging.INFO if code == EXIT_STOPPED else logging.WARNING
            log.log(level, "instance stopping: %s; exiting within %.1f s", reason, grace)
            arm_kernel_timer(grace + KERNEL_TIMER_MARGIN_SECONDS)
        self.stopping.set()
        return standing

    # -- the watchdog thread ---------------------------------------------------------

    def _note_signal(self, number: int, frame: FrameType | None) -> None:
        """The Python-level handler (main thread): remember; the watchdog acts on it."""
        self._signalled = number

    def _watch(self) -> None:
        poller = select.poll()
        poller.register(self._channel_fd, select.POLLRDHUP)
        poller.register(self._wakeup_read, select.POLLIN)
        hung_up = False
        while True:
            events = dict(poller.poll(TICK_SECONDS * 1000))
            if events.get(self._channel_fd, 0) and not hung_up:
                hung_up = True
                poller.unregister(self._channel_fd)
            self._check(hung_up, self._signals_received(events))
            order = self._order
            if order is not None and self.clock() >= order.deadline:
                self._exit_now(order)

    def _signals_received(self, events: dict[int, int]) -> set[int]:
        """The signals the wakeup fd and the Python-level handler reported since last time."""
        received = {self._signalled} - {0}
        self._signalled = 0
        if events.get(self._wakeup_read.fileno(), 0):
            try:
                received.update(self._wakeup_read.recv(512))
            except BlockingIOError:
                pass
        return received

    def _check(self, hung_up: bool, signals: set[int]) -> None:
        """Turn what was noticed into stop orders: the worker's absence first."""
        orphaned = orphaned_because(
            self.parent_pid,
            os.getppid(),
            parent_death_signal=PARENT_DEATH_SIGNAL in signals,
            channel_hung_up=hung_up,
        )
        if orphaned is not None:
            self.order_stop(orphaned, EXIT_ORPHANED, self.orphan_grace_seconds)
        for number in sorted(signals & set(STOP_SIGNALS)):
            reason = f"asked to stop ({signal_name(number)})"
            self.order_stop(reason, EXIT_STOPPED, self.stop_grace_seconds)

    def _exit_now(self, order: StopOrder) -> None:
        """Log why, flush the log, and end the process at once."""
        log.error(
            "instance exiting now: still stopping %.1f s after the order (%s)",
            order.grace,
            order.reason,
        )
        for handler in logging.getLogger().handlers:
            try:
                handler.flush()
            except Exception:  # noqa: BLE001, S110 - exiting regardless
                pass
        os._exit(order.code)


def arm_kernel_timer(seconds: float) -> None:
    """Have the kernel end this process ``seconds`` from now with SIGALRM's default
    action, which needs no Python thread to run; an earlier timer is kept."""
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    if remaining and remaining <= seconds:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.signal.restype = ctypes.c_void_p
    libc.signal(signal.SIGALRM, None)  # SIG_DFL, from any thread (signal.signal: main only)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
