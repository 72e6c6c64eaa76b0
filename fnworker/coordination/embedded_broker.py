"""Starts and stops the embedded Pulsar-protocol broker (pulsar-lite) as a child
process on a loopback port. Does I/O: a subprocess, a config file, a TCP probe.

Used by ``fnworker standalone`` and by the test fixtures. We run the binary
ourselves rather than through ``pulsar_lite.start_broker`` because that helper
binds metrics on 0.0.0.0:8080, scans a fixed port range and writes to a log file
shared by every user of the machine (notes/pulsar-lite.md).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pulsar_lite.binary_finder import find_pulsar_lite_binary

LOOPBACK = "127.0.0.1"
PR_SET_PDEATHSIG = 1


def free_loopback_port() -> int:
    """Ask the kernel for a TCP port that is free on the loopback address now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def broker_toml(log_level: str, keep_alive_secs: int) -> str:
    """The broker's config: metrics off (never 0.0.0.0), quiet logs, fast keep-alive."""
    return (
        f'log_level = "{log_level}"\n'
        f"keep_alive_interval_secs = {keep_alive_secs}\n"
        f"connection_liveness_check_timeout_secs = {keep_alive_secs}\n"
        "[metrics]\nenabled = false\n"
    )


@dataclass
class EmbeddedBroker:
    """A running pulsar-lite process; ``stop()`` ends it by its own PID."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """The pulsar:// service URL clients connect to."""
        return f"pulsar://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int:
        """The broker's process id."""
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL) and reap it; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up; the message says why."""


def start_embedded_broker(
    data_dir: Path,
    port: int | None = None,
    log_level: str = "warn",
    keep_alive_secs: int = 2,
    ready_timeout: float = 10.0,
) -> EmbeddedBroker:
    """Start pulsar-lite with its data under ``data_dir`` and wait until it accepts TCP."""
    data_dir.mkdir(parents=True, exist_ok=True)
    wait_for_previous_broker(data_dir, ready_timeout)
    toml_path = data_dir / "pulsar-lite.toml"
    toml_path.write_text(broker_toml(log_level, keep_alive_secs))
    port = port or free_loopback_port()
    log_path = data_dir / "broker.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                find_pulsar_lite_binary(),
                "--config",
                str(toml_path),
                "--addr",
                f"{LOOPBACK}:{port}",
                "--db-path",
                str(data_dir / "broker.db"),
                "--log-level",
                log_level,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=data_dir,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    (data_dir / "broker.pid").write_text(str(process.pid))
    broker = EmbeddedBroker(process=process, port=port, data_dir=data_dir, log_path=log_path)
    try:
        wait_until_accepting(broker, ready_timeout)
    except BrokerStartError:
        broker.stop()
        raise
    return broker


def wait_for_previous_broker(data_dir: Path, timeout: float) -> None:
    """Wait for the broker a previous worker started on ``data_dir`` to exit.

    A SIGKILLed worker's broker gets its parent-death signal a moment later and still
    holds the database lock; a worker restarted at once waits for it. A broker that
    stays (another worker uses this state directory) is one sentence, not a lock error.
    """
    pid_file = data_dir / "broker.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        return
    database = str(data_dir / "broker.db")
    deadline = time.monotonic() + timeout
    while serves_database(pid, database):
        if time.monotonic() > deadline:
            raise BrokerStartError(
                f"the state directory {data_dir.parent} is in use: the embedded broker of "
                f"another worker (pid {pid}) still runs on it; stop that worker or give "
                "this one another --state-dir"
            )
        time.sleep(0.02)


def serves_database(pid: int, database: str) -> bool:
    """True while process ``pid`` is a live pulsar-lite serving ``database``."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    zombie = status.rpartition(")")[2].split()[:1] == ["Z"]
    return not zombie and os.fsencode(database) in command


def die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM us when the starting thread dies.

    So a SIGKILLed worker never leaves its embedded broker behind. Start the broker
    from a long-lived thread (the main thread), since the signal follows the thread.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_until_accepting(broker: EmbeddedBroker, timeout: float) -> None:
    """Poll the broker's port until it accepts a connection or the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            tail = broker.log_path.read_text(errors="replace")[-500:]
            raise BrokerStartError(
                f"embedded broker exited with code {broker.process.returncode} "
                f"before accepting connections on port {broker.port}: {tail.strip()}"
            )
        try:
            with socket.create_connection((LOOPBACK, broker.port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise BrokerStartError(
        f"embedded broker did not accept connections on {LOOPBACK}:{broker.port} "
        f"within {timeout:.0f} s (log: {broker.log_path})"
    )


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
