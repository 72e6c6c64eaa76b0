"""The supervisor of one instance process, on a thread of its own (the thread that
spawns, so Linux's parent-death signal fires exactly when supervision ends). Does
process, file and socket I/O; every method but the status reads blocks.

It spawns the process, hands it the InstanceSpec over the control channel, polls
status and metrics every ``poll_interval_seconds`` (each poll is also the health
check that keeps the process alive), restarts it after a crash as the restart
policy says, and reports a package that does not load once, without restarting.
A stop is SIGTERM, ``stop_grace_seconds``, then SIGKILL, and is noticed within
``STOP_NOTICE_SECONDS`` whatever the supervisor waits for. Its phase lives in a
``PhaseCell`` (phases.py), changed only by legal moves. Deadlines are read from the
injected ``clock`` (``time.monotonic`` by default).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
import structlog

from fnworker.runtimes.instance.stats import now_ms
from fnworker.runtimes.process.command import instance_command, instance_environment, log_file_of
from fnworker.runtimes.process.control import (
    Boot,
    ChannelClosed,
    ChannelTimeout,
    ControlChannel,
    Exiting,
    GetMetrics,
    GetStatus,
    MetricsReply,
    MetricsReset,
    ResetMetrics,
    Started,
    StatusReply,
)
from fnworker.runtimes.process.outcomes import Outcome, exit_outcome, last_log_line, starting_error
from fnworker.runtimes.process.phases import Phase, PhaseCell
from fnworker.runtimes.process.pid_files import (
    PidRecord,
    pid_file_of,
    remove_if_names,
    start_ticks,
    write_pid_file,
)
from fnworker.runtimes.process.restart_policy import after_crash
from fnworker.runtimes.process.settings import ProcessSettings, instance_stop_grace
from fnworker.scheduler.model.instances import InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import ExceptionInformation, InstanceStatusData

RECENT_EXITS = 10
STOP_NOTICE_SECONDS = 0.1
"""How long a supervisor waiting for a reply may take to notice a stop request."""
log = structlog.get_logger("fnworker.runtime.process")

Process = subprocess.Popen[bytes]


class InstanceProcess:
    """Supervises one instance on a thread of its own (the thread that spawns)."""

    def __init__(
        self,
        spec: InstanceSpec,
        settings: ProcessSettings,
        *,
        restarts: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.restarts = restarts
        self.clock = clock
        self.pid: int | None = None
        self.exits: deque[ExceptionInformation] = deque(maxlen=RECENT_EXITS)
        self._phase = PhaseCell(Phase.STARTING)
        self._status: InstanceStatusData | None = None
        self._metrics = InstanceMetrics()
        self._stop = threading.Event()
        self._spawned = threading.Event()
        self._started_at: float | None = None
        """When the current process was spawned (None before the first spawn)."""
        self._channel_lock = threading.Lock()
        self._channel: ControlChannel | None = None
        self._thread = threading.Thread(
            target=self._supervise, name=f"fnworker-supervisor-{spec.instance}", daemon=True
        )

    @property
    def phase(self) -> Phase:
        """Where the instance is in its life (see phases.py)."""
        return self._phase.phase

    # -- called from the driver (any thread) ---------------------------------------

    def begin(self, timeout: float = 10.0) -> None:
        """Start supervising and wait until the first spawn was attempted (blocking)."""
        self._thread.start()
        self._spawned.wait(timeout)

    def request_stop(self) -> None:
        """Ask the supervisor to stop the process (it does so within a poll interval)."""
        self._stop.set()

    def join(self) -> None:
        """Wait until the process has ended and supervision stopped (blocking)."""
        self._thread.join()

    def status(self) -> InstanceStatusData:
        """The last polled status, adjusted with what only the supervisor knows."""
        phase, error = self._phase.snapshot()
        cached = self._status if phase is Phase.RUNNING else None
        status = msgspec.structs.replace(cached) if cached else InstanceStatusData(error=error)
        if phase is Phase.STARTING and not status.error:
            status.error = starting_error(
                self._started_at, self.clock(), self.settings.start_timeout_seconds
            )
        status.running = phase is Phase.RUNNING and cached is not None and cached.running
        status.num_restarts = self.restarts
        status.worker_id = self.spec.worker_id
        status.latest_system_exceptions = [*status.latest_system_exceptions, *self.exits][
            -RECENT_EXITS:
        ]
        return status

    def metrics(self) -> InstanceMetrics:
        """The last polled counters."""
        return self._metrics

    def reset_metrics(self) -> bool:
        """Ask the process to zero its counters (blocking); False if it is not running."""
        try:
            reply = self._request(ResetMetrics(), MetricsReset)
        except ChannelClosed:
            return False
        if reply is None:
            return False
        self._metrics = InstanceMetrics()
        return True

    # -- the supervisor thread -----------------------------------------------------

    def _supervise(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                began, outcome = self._run_once()
                if outcome is None or self._stop.is_set():
                    break
                self.exits.append(
                    ExceptionInformation(exception_string=outcome.reason, timestamp_ms=now_ms())
                )
                if not outcome.retry:
                    self._give_up(outcome)
                    break
                decision = after_crash(failures, began, self.clock(), self.settings.restart)
                failures = decision.failures
                if self._back_off(outcome, failures, decision.delay_seconds):
                    break
                self.restarts += 1
        except BaseException as error:
            self._fail(f"supervising the instance process failed: {error!r}")
            log.exception("instance supervisor failed", instance=self.spec.instance)
        finally:
            if self._stop.is_set() and self._phase.phase is not Phase.STOPPED:
                self._phase.move(Phase.STOPPED)
            self._spawned.set()

    def _fail(self, error: str) -> None:
        """Move to FAILED with ``error`` (only note the error if already there)."""
        if self._phase.phase is Phase.FAILED:
            self._phase.note_error(error)
        else:
            self._phase.move(Phase.FAILED, error)

    def _give_up(self, outcome: Outcome) -> None:
        self._fail(f"{outcome.reason} (not restarted: update or restart the function to retry)")
        log.error(
            "instance failed; not restarting it", instance=self.spec.instance, reason=outcome.reason
        )
        self._stop.wait()

    def _back_off(self, outcome: Outcome, failures: int, delay: float) -> bool:
        """Wait before the next restart; True if a stop came meanwhile."""
        loop = f"crash loop ({failures} failures in a row): " if failures > 1 else ""
        self._phase.move(Phase.BACKING_OFF, f"{loop}{outcome.reason}; restarting in {delay:.1f} s")
        log.warning(
            "instance process ended; restarting",
            instance=self.spec.instance,
            reason=outcome.reason,
            delay=delay,
            failures=failures,
        )
        if self._stop.wait(delay):
            return True
        # Starting again, but still in a crash loop until the new process runs: the
        # status keeps saying why (a bare "is starting" would hide the loop).
        self._phase.move(Phase.STARTING, f"{loop}{outcome.reason}; restarting now")
        return False

    def _run_once(self) -> tuple[float, Outcome | None]:
        """Spawn, supervise until the process ends or a stop; (when it began, outcome)."""
        self._status, self._metrics = None, InstanceMetrics()
        self._remove_unpacked_copies()
        try:
            process, channel = self._spawn()
        except OSError as error:
            return self.clock(), Outcome(reason=f"starting the instance process failed: {error}")
        finally:
            self._spawned.set()
        began = self._started_at = self.clock()
        try:
            outcome = self._boot_and_watch(process, channel)
        except ChannelClosed:
            outcome = self._ended(process, channel)
        finally:
            self._end(process, channel)
        return began, outcome

    def _spawn(self) -> tuple[Process, ControlChannel]:
        settings, instance = self.settings, self.spec.instance
        log_file = log_file_of(settings.log_directory, instance)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair()
        try:
            with log_file.open("ab") as output:
                process = subprocess.Popen(
                    instance_command(settings, instance, theirs.fileno(), parent_pid=os.getpid()),
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=instance_environment(self.spec, settings, dict(os.environ)),
                    cwd=self.spec.package_path.parent,
                    start_new_session=True,
                )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.pid = process.pid
        self._record_pid(process.pid)
        log.info("instance process spawned", instance=instance, pid=process.pid)
        channel = ControlChannel.worker_end(ours)
        self._channel = channel
        return process, channel

    def _record_pid(self, pid: int) -> None:
        """Write the instance's pid file, so a restarted worker can end this process."""
        record = PidRecord(
            pid=pid,
            start_ticks=start_ticks(pid) or 0,
            worker_pid=os.getpid(),
            worker_id=self.spec.worker_id,
            instance=self.spec.instance,
        )
        write_pid_file(pid_file_of(self.settings.state_directory, self.spec.instance), record)

    def _boot_and_watch(self, process: Process, channel: ControlChannel) -> Outcome | None:
        settings = self.settings
        channel.send(
            Boot(
                spec=self.spec,
                health_timeout_seconds=settings.health_timeout_seconds,
                stop_grace_seconds=instance_stop_grace(settings.stop_grace_seconds),
            )
        )
        first = self._await_start(process, channel)
        if not isinstance(first, Started):
            return first
        self._phase.move(Phase.RUNNING, "")
        missed = 0
        self._poll()
        while not self._stop.wait(settings.poll_interval_seconds):
            if process.poll() is not None:
                return self._ended(process, channel)
            missed = 0 if self._poll() else missed + 1
            if missed >= settings.missed_polls_before_kill:
                return Outcome(
                    reason=f"the instance process (pid {process.pid}) stopped answering "
                    f"{missed} status requests in a row and was ended"
                )
        return None

    def _await_start(self, process: Process, channel: ControlChannel) -> Started | Outcome | None:
        deadline = self.clock() + self.settings.start_timeout_seconds
        while self.clock() < deadline:
            if self._stop.is_set():
                return None
            try:
                with self._channel_lock:
                    message = channel.receive(STOP_NOTICE_SECONDS)
            except ChannelTimeout:
                if process.poll() is not None:
                    return self._ended(process, channel)
                continue
            if isinstance(message, Exiting):
                return Outcome(reason=message.reason, retry=message.retry)
            if isinstance(message, Started):
                return message
        return Outcome(
            reason=f"the instance did not start within {self.settings.start_timeout_seconds:.0f} s"
        )

    def _poll(self) -> bool:
        """Refresh status and metrics; False if the process did not answer in time."""
        status = self._request(GetStatus(), StatusReply)
        metrics = self._request(GetMetrics(), MetricsReply)
        if status is not None:
            self._status = status.status
        if metrics is not None:
            self._metrics = metrics.metrics
        return status is not None and metrics is not None

    def _request(self, request: Any, reply_type: type[Any]) -> Any:
        """Send one request and read its reply; None on timeout, on a stop request, or
        if not running.

        Replies of earlier, timed-out requests are skipped. ChannelClosed propagates
        on the supervisor thread (the process is ending).
        """
        channel = self._channel
        if channel is None or self._phase.phase is not Phase.RUNNING:
            return None
        deadline = self.clock() + self.settings.request_timeout_seconds
        with self._channel_lock:
            channel.send(request)
            while (remaining := deadline - self.clock()) > 0 and not self._stop.is_set():
                try:
                    message = channel.receive(min(remaining, STOP_NOTICE_SECONDS))
                except ChannelTimeout:
                    continue
                if isinstance(message, reply_type):
                    return message
                if isinstance(message, Exiting):
                    self._phase.note_error(message.reason)
        return None

    def _ended(self, process: Process, channel: ControlChannel) -> Outcome:
        """The outcome of a process that ended by itself: its last words, else its exit code."""
        try:
            code = process.wait(timeout=self.settings.stop_grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        said = self._last_words(channel)
        if said is not None:
            return said
        line = last_log_line(log_file_of(self.settings.log_directory, self.spec.instance))
        return exit_outcome(process.pid, code, line)

    def _last_words(self, channel: ControlChannel) -> Outcome | None:
        """An ``Exiting`` message still buffered on the channel, if any."""
        with self._channel_lock:
            try:
                while True:
                    message = channel.receive(0.1)
                    if isinstance(message, Exiting):
                        return Outcome(reason=message.reason, retry=message.retry)
            except (ChannelClosed, ChannelTimeout):
                pass
        phase, error = self._phase.snapshot()
        return Outcome(reason=error) if error and phase is Phase.RUNNING else None

    def _end(self, process: Process, channel: ControlChannel) -> None:
        """Make sure the process is gone: SIGTERM, the grace period, then SIGKILL."""
        if self._stop.is_set():
            self._phase.move(Phase.STOPPING)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.settings.stop_grace_seconds)
            except subprocess.TimeoutExpired:
                log.warning(
                    "instance process ignored SIGTERM; killing it",
                    instance=self.spec.instance,
                    pid=process.pid,
                )
                process.kill()
                process.wait()
        with self._channel_lock:
            self._channel = None
            channel.close()
        remove_if_names(pid_file_of(self.settings.state_directory, self.spec.instance), process.pid)

    def _remove_unpacked_copies(self) -> None:
        """Delete what earlier runs unpacked next to the package (the loader's ``.{name}.*``)."""
        package = self.spec.package_path
        for leftover in package.parent.glob(f".{package.name}.*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
