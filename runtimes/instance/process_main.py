"""The entry point of one instance process of the process runtime
(``python -m fnworker.runtimes.instance.process_main``): reads its InstanceSpec
from the control channel, runs the shared InstanceHost, answers the worker's
status, metrics, reset and health requests, and exits when told to (SIGTERM),
when the worker goes away, or when its message loop stops. Does process, file and
broker I/O and runs user code.

Command line (no secrets; the spec arrives over the channel):
``--instance ID --control-fd N --parent-pid P --log-file F [--log-max-bytes B]
[--log-backups K]``. A ``pythonInstanceLocation`` script receives the same
arguments and normally just calls ``main()`` here.

No orphans: the process asks Linux for SIGTERM when the thread that spawned it
ends (``PR_SET_PDEATHSIG``), then checks that its parent is still the worker it
was started by (closing the race with a parent that died first); while it runs,
end-of-file on the channel, a changed parent pid or no request for
``health_timeout_seconds`` make it exit. Shutdown is bounded: a hard exit follows
``stop_grace_seconds`` after the decision to stop.

Exit codes: 0 stopped as asked; 3 the package does not load (not retried); 4 the
instance could not start (retried); 5 its message loop stopped; 6 orphaned.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import io
import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pulsar

from fnworker.runtimes.instance.control import (
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
from fnworker.runtimes.instance.host import InstanceHost, InstanceStartError
from fnworker.runtimes.instance.instance_plan import PlanError, plan_instance
from fnworker.runtimes.instance.package_layout import PackageError
from fnworker.runtimes.instance.state_store import StateStore
from fnworker.runtimes.instance.stats import describe
from fnworker.runtimes.thread import make_client  # re-exported from broker_client
from fnworker.scheduler.logging_setup import configure_logging
from fnworker.scheduler.records import FunctionRecord

EXIT_STOPPED = 0
EXIT_LOAD_FAILED = 3
EXIT_START_FAILED = 4
EXIT_LOOP_STOPPED = 5
EXIT_ORPHANED = 6
BOOT_TIMEOUT_SECONDS = 30.0
TICK_SECONDS = 0.25
PR_SET_PDEATHSIG = 1

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
    """Ask Linux to SIGTERM this process when the worker thread that spawned it ends."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class InstanceProcess:
    """One instance host behind the control channel."""

    def __init__(self, boot: Boot, channel: ControlChannel, parent_pid: int) -> None:
        self.boot = boot
        self.spec = boot.spec
        self.channel = channel
        self.parent_pid = parent_pid
        self.stopping = threading.Event()

    def run(self) -> int:
        """Start the host, serve the channel, stop; the exit code."""
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        try:
            client = make_client(self.spec.client, pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
        except Exception as error:  # noqa: BLE001 - reported over the channel
            return self.fail_start(
                InstanceStartError(f"creating the pulsar client failed: {describe(error)}"), None
            )
        host = InstanceHost(self.spec, client, StateStore(), thread_name=str(self.spec.instance))
        try:
            skip_consumer_ids(client, self.spec.function, self.spec.index)
            host.open()
        except InstanceStartError as error:
            return self.fail_start(error, client)
        host.start()
        log.info("instance started: %s (pid %d)", self.spec.instance, os.getpid())
        code, reason = EXIT_STOPPED, ""
        try:
            self.channel.send(Started(pid=os.getpid()))
            code, reason = self.serve(host)
        except ChannelClosed:
            code, reason = EXIT_ORPHANED, "the worker closed the control channel"
        self.shut_down(host, client, code, reason)
        return code

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

    def serve(self, host: InstanceHost) -> tuple[int, str]:
        """Answer requests until a reason to exit comes up; (exit code, reason)."""
        last_request = time.monotonic()
        while True:
            reason = self.reason_to_exit(host, last_request)
            if reason is not None:
                return reason
            try:
                request = self.channel.receive(TICK_SECONDS)
            except ChannelTimeout:
                continue
            except ChannelClosed:
                return EXIT_ORPHANED, "the worker closed the control channel"
            last_request = time.monotonic()
            self.channel.send(answer(request, host))

    def reason_to_exit(self, host: InstanceHost, last_request: float) -> tuple[int, str] | None:
        """Why this process should stop now, or None to go on."""
        if self.stopping.is_set():
            return EXIT_STOPPED, ""
        if os.getppid() != self.parent_pid:
            return EXIT_ORPHANED, "the worker process is gone"
        if not host.running:
            return EXIT_LOOP_STOPPED, host.error or "the message loop stopped"
        silent = time.monotonic() - last_request
        if silent > self.boot.health_timeout_seconds:
            return EXIT_ORPHANED, f"no request from the worker for {silent:.0f} s"
        return None

    def shut_down(self, host: InstanceHost, client: pulsar.Client, code: int, reason: str) -> None:
        """Stop the loop and close everything, within the grace period at most."""
        grace = self.boot.stop_grace_seconds
        hard_exit = threading.Timer(grace, os._exit, (code or EXIT_ORPHANED,))
        hard_exit.daemon = True
        hard_exit.start()
        if reason:
            log.warning("instance stopping: %s", reason)
            try:
                self.channel.send(Exiting(reason=reason))
            except ChannelClosed:
                pass
        host.request_stop()
        host.join(max(0.1, grace - 1.0))
        host.close()
        close_quietly(client)
        hard_exit.cancel()
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
    Harmless on Apache Pulsar.
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
