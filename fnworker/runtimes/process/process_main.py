"""The entry point of one instance process of the process runtime
(``python -m fnworker.runtimes.process.process_main``): reads its InstanceSpec
from the control channel, runs the shared InstanceHost, answers the worker's
status, metrics, reset and health requests, and exits when told to (SIGTERM),
when the worker goes away, or when its message loop stops. Does process, file and
broker I/O and runs user code.

Command line (no secrets; the spec arrives over the channel):
``--instance ID --control-fd N --parent-pid P --log-file F [--log-max-bytes B]
[--log-backups K]``. A ``pythonInstanceLocation`` script receives the same
arguments and normally just calls ``main()`` here.

No orphans: the process asks Linux for SIGHUP when the thread that spawned it
ends (``PR_SET_PDEATHSIG``), then checks that its parent is still the worker it
was started by (closing the race with a parent that died first). While it runs,
an exit watchdog (fnworker/runtimes/process/exit_watchdog.py) turns a changed parent pid,
a hung-up channel or a stop signal into a stop order with a deadline, whatever
the main thread is doing; no request for ``health_timeout_seconds`` or a stopped
message loop do the same from the main thread. The main thread stops gracefully
while the deadline allows; at the deadline the watchdog logs why and exits hard:
1 s after the worker is gone, ``stop_grace_seconds`` after a SIGTERM.

Exit codes: 0 stopped as asked; 3 the package does not load (not retried); 4 the
instance could not start (retried); 5 its message loop stopped; 6 orphaned (0 and
6 are defined in exit_watchdog.py, which may exit with them).
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import io
import logging
import logging.handlers
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pulsar

from fnworker.runtimes.broker_client import make_client
from fnworker.runtimes.instance.host import InstanceHost, InstanceStartError
from fnworker.runtimes.instance.instance_plan import PlanError, plan_instance
from fnworker.runtimes.instance.package_layout import PackageError
from fnworker.runtimes.instance.state_logs import state_log_for
from fnworker.runtimes.instance.stats import describe
from fnworker.runtimes.process.control import (
    Boot,
    ChannelClosed,
    ChannelTimeout,
    ControlChannel,
    Exiting,
    GetMetrics,
    GetStatus,
    HealthCheck,
    Healthy,
    MetricsReply,
    MetricsReset,
    ResetMetrics,
    Started,
    StatusReply,
)
from fnworker.runtimes.process.exit_watchdog import (
    EXIT_ORPHANED,
    EXIT_STOPPED,
    ORPHAN_GRACE_SECONDS,
    PARENT_DEATH_SIGNAL,
    ExitWatchdog,
    StopOrder,
    join_budget,
)
from fnworker.scheduler.model.records import FunctionRecord
from fnworker.scheduler.settings.logging_setup import configure_logging

EXIT_LOAD_FAILED = 3
EXIT_START_FAILED = 4
EXIT_LOOP_STOPPED = 5
BOOT_TIMEOUT_SECONDS = 30.0
TICK_SECONDS = 0.25
PR_SET_PDEATHSIG = 1
CHANNEL_CLOSED = "the worker closed the control channel"

log = logging.getLogger("fnworker.instance.process")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line the process runtime passes."""
    parser = argparse.ArgumentParser(prog="fnworker-instance")
    parser.add_argument("--instance", required=True, help="instance id, for ps and logs")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--log-file", type=Path, required=True)
    parser.add_argument("--log-max-bytes", type=int, default=10 * 1024 * 1024)
    parser.add_argument("--log-backups", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one instance until stopped; returns the exit code."""
    args = parse_args(argv)
    die_with_parent()
    setup_logging(args.log_file, args.log_max_bytes, args.log_backups)
    if os.getppid() != args.parent_pid:
        log.warning("the worker that started this instance is gone; exiting")
        return EXIT_ORPHANED
    channel = ControlChannel.instance_end(socket.socket(fileno=args.control_fd))
    try:
        boot = channel.receive(BOOT_TIMEOUT_SECONDS)
    except (ChannelClosed, ChannelTimeout) as error:
        log.warning("no instance spec from the worker (%s); exiting", error)
        return EXIT_ORPHANED
    if not isinstance(boot, Boot):
        log.error("the worker sent %s before the instance spec; exiting", type(boot).__name__)
        return EXIT_ORPHANED
    return InstanceProcess(boot, channel, args.parent_pid).run()


def die_with_parent() -> None:
    """Ask Linux to signal this process when the worker thread that spawned it ends
    (SIGHUP: its default action ends the process until the exit watchdog handles it)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL)


class InstanceProcess:
    """One instance host behind the control channel."""

    def __init__(self, boot: Boot, channel: ControlChannel, parent_pid: int) -> None:
        self.boot = boot
        self.spec = boot.spec
        self.channel = channel
        self.watchdog = ExitWatchdog(
            parent_pid=parent_pid,
            channel=channel.sock,
            stop_grace_seconds=boot.stop_grace_seconds,
        )

    def run(self) -> int:
        """Start the host, serve the channel, stop; the exit code."""
        self.watchdog.start()
        try:
            client = make_client(self.spec.client, pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
        except Exception as error:  # noqa: BLE001 - reported over the channel
            return self.fail_start(
                InstanceStartError(f"creating the pulsar client failed: {describe(error)}"), None
            )
        host = InstanceHost(
            self.spec,
            client,
            state_log_for(self.spec, lambda: client),
            thread_name=str(self.spec.instance),
        )
        log.info("instance opening: loading the code and subscribing")
        try:
            if self.spec.client.consumer_id_slots:
                skip_consumer_ids(client, self.spec.function, self.spec.index)
            host.open()
        except InstanceStartError as error:
            return self.fail_start(error, client)
        if not self.watchdog.stopping.is_set():
            host.start()
            log.info("instance started: %s (pid %d)", self.spec.instance, os.getpid())
            self.serve(host)
        order = self.watchdog.order
        assert order is not None
        self.shut_down(host, client, order)
        return order.code

    def fail_start(self, error: InstanceStartError, client: pulsar.Client | None) -> int:
        """Report a failed start over the channel and say whether to retry."""
        permanent = isinstance(error.__context__, (PackageError, PlanError))
        log.error("instance failed to start: %s", error)
        try:
            self.channel.send(Exiting(reason=str(error), retry=not permanent))
        except ChannelClosed:
            pass
        if client is not None:
            close_quietly(client)
        return EXIT_LOAD_FAILED if permanent else EXIT_START_FAILED

    def serve(self, host: InstanceHost) -> None:
        """Answer requests until a stop order stands."""
        last_request = time.monotonic()
        try:
            self.channel.send(Started(pid=os.getpid()))
            while not self.watchdog.stopping.is_set():
                if self.check_health(host, last_request):
                    continue
                try:
                    request = self.channel.receive(TICK_SECONDS)
                except ChannelTimeout:
                    continue
                last_request = time.monotonic()
                self.channel.send(answer(request, host))
        except ChannelClosed:
            self.watchdog.order_stop(CHANNEL_CLOSED, EXIT_ORPHANED, ORPHAN_GRACE_SECONDS)

    def check_health(self, host: InstanceHost, last_request: float) -> bool:
        """Order a stop if the loop ended or the worker went quiet; True if one was ordered."""
        if not host.running:
            reason = host.error or "the message loop stopped"
            self.watchdog.order_stop(reason, EXIT_LOOP_STOPPED, self.boot.stop_grace_seconds)
            return True
        silent = time.monotonic() - last_request
        if silent > self.boot.health_timeout_seconds:
            reason = f"no request from the worker for {silent:.0f} s"
            self.watchdog.order_stop(reason, EXIT_ORPHANED, ORPHAN_GRACE_SECONDS)
            return True
        return False

    def shut_down(self, host: InstanceHost, client: pulsar.Client, order: StopOrder) -> None:
        """Stop the loop and close everything while the order's deadline allows; the
        watchdog ends the process at the deadline if this does not finish."""
        if order.code != EXIT_STOPPED:
            try:
                self.channel.send(Exiting(reason=order.reason))
            except ChannelClosed:
                pass
        host.request_stop()
        host.join(join_budget(order.deadline, time.monotonic()))
        host.close()
        host.state.close()
        close_quietly(client)
        log.info("instance stopped: %s", self.spec.instance)


def answer(request: object, host: InstanceHost) -> msgspec.Struct:
    """The reply to one request."""
    if isinstance(request, GetStatus):
        return StatusReply(status=host.status())
    if isinstance(request, GetMetrics):
        return MetricsReply(metrics=host.metrics())
    if isinstance(request, ResetMetrics):
        host.stats.reset()
        return MetricsReset()
    if not isinstance(request, HealthCheck):
        log.warning("unexpected %s on the control channel", type(request).__name__)
    return Healthy(running=host.running)


def skip_consumer_ids(client: pulsar.Client, record: FunctionRecord, count: int) -> None:
    """Create and close ``count`` throw-away readers so this client's consumer id is unique.

    pulsar-lite keys a subscription's consumers by the client's consumer id, which
    every process starts at 0, so a second process on one subscription fails with
    "Consumer 0 already exists". Instance ``index`` burns ``index`` ids first; its
    real consumer then gets id ``index``, unique among the function's instances.
    The process runtime calls it only when the worker found pulsar-lite (or the
    override key asks for it): ``ClientSettings.consumer_id_slots``.
    """
    if count <= 0:
        return
    try:
        topic = plan_instance(record).inputs.topics[0]
    except (PlanError, IndexError):
        return
    for _ in range(count):
        try:
            client.create_reader(topic, pulsar.MessageId.latest).close()
        except Exception as error:  # noqa: BLE001 - the subscribe that follows reports it
            log.warning("creating a throw-away reader on %s failed: %s", topic, describe(error))
            return


def close_quietly(client: pulsar.Client) -> None:
    """Close the client, ignoring errors (we are exiting)."""
    try:
        client.close()
    except Exception as error:  # noqa: BLE001 - best effort on the way out
        log.debug("closing the pulsar client failed: %s", describe(error))


# -- logging -----------------------------------------------------------------


class InstanceLogFile(logging.handlers.RotatingFileHandler):
    """Pulsar's per-instance log file, rotated by size, with fds 1 and 2 following it.

    Raw writes to stdout/stderr (the pulsar C++ client, faulthandler) land in the
    current file, also after a rotation.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.redirect_standard_fds()

    def doRollover(self) -> None:
        super().doRollover()
        self.redirect_standard_fds()

    def redirect_standard_fds(self) -> None:
        """Point file descriptors 1 and 2 at the current log file."""
        if self.stream is not None:
            self.stream.flush()
            for fd in (1, 2):
                os.dup2(self.stream.fileno(), fd)


class LineLogger(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` replacement: each line becomes a log record."""

    def __init__(self, logger: logging.Logger, level: int, fd: int) -> None:
        super().__init__()
        self.logger = logger
        self.level = level
        self.fd = fd
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                self.logger.log(self.level, line.rstrip())
        return len(text)

    def flush(self) -> None:
        if self._partial.strip():
            self.logger.log(self.level, self._partial.rstrip())
        self._partial = ""

    def fileno(self) -> int:
        return self.fd

    def writable(self) -> bool:
        return True


def setup_logging(path: Path, max_bytes: int, backups: int) -> None:
    """Every log line of this process goes to the instance's rotating log file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    configure_logging()
    root = logging.getLogger()
    handler = InstanceLogFile(path, max_bytes, backups)
    handler.setFormatter(root.handlers[0].formatter if root.handlers else None)
    root.handlers[:] = [handler]
    faulthandler.enable(file=sys.__stderr__ or sys.stderr)
    sys.stdout = LineLogger(logging.getLogger("fnworker.function.stdout"), logging.INFO, 1)
    sys.stderr = LineLogger(logging.getLogger("fnworker.function.stderr"), logging.WARNING, 2)


if __name__ == "__main__":
    sys.exit(main())
