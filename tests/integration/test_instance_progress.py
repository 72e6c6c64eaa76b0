"""Status tells the truth about a running instance that makes no progress
(fnworker/runtimes/instance/progress.py), on the real broker: its broker is gone, or the
broker holds input it does not deliver (a pulsar-lite ghost consumer), or (in
test_containment.py) it is stuck in user code."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pulsar
import pytest
from anyio.from_thread import BlockingPortal

from fnworker.coordination.embedded_broker import EmbeddedBroker
from fnworker.runtimes.thread import ThreadRuntime
from fnworker.scheduler.model.instances import ClientSettings, InstanceSpec
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord, instance_id_of
from tests.integration.conftest import FUNCTIONS, produce, wait_until

pytestmark = [pytest.mark.timeout(90)]

SHOWN_WITHIN = 16.0
"""Seconds from the last progress until status says why (progress.py: 5 s without a
connection, 10 s without delivery; the rest is polling on a loaded machine)."""

GHOST = """
import sys, time, pulsar
url, topic, subscription = sys.argv[1:4]
client = pulsar.Client(url, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
client.create_reader(topic, pulsar.MessageId.latest).close()  # consumer id 1, not 0
client.subscribe(topic, subscription, consumer_type=pulsar.ConsumerType.Shared)
print("subscribed", flush=True)
time.sleep(600)
"""


def echo_spec(tmp_path: Path, broker: EmbeddedBroker, name: str) -> InstanceSpec:
    """The echo function (stuck_function.py) on ``<name>-in`` -> ``<name>-out``."""
    folder = tmp_path / "instances" / name
    folder.mkdir(parents=True)
    package = Path(shutil.copy(FUNCTIONS / "stuck_function.py", folder / "stuck_function.py"))
    fqfn = Fqfn(f"public/default/{name}")
    config = FunctionConfig(
        name=name,
        class_name="stuck_function.process",
        inputs=[f"{name}-in"],
        output=f"{name}-out",
    )
    return InstanceSpec(
        instance=instance_id_of(fqfn, 0),
        index=0,
        function=FunctionRecord(fqfn=fqfn, version=1, config=config),
        package_path=package,
        worker_id="worker-1",
        client=ClientSettings(service_url=broker.url, operation_timeout_seconds=5),
    )


@pytest.fixture
def own_runtime(portal: BlockingPortal) -> Iterator[ThreadRuntime]:
    driver = ThreadRuntime(thread_group_name="progress", stop_timeout_seconds=2)
    yield driver
    portal.call(driver.aclose)


def unread_bytes(pid: int) -> int:
    """Bytes waiting unread in the TCP sockets of process ``pid`` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = fd.readlink().as_posix() if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    unread = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                unread += int(fields[4].split(":")[1], 16)
    return unread


def processed(runtime: ThreadRuntime, spec: InstanceSpec) -> int:
    status = runtime.status(spec.instance)
    return status.num_successfully_processed if status else 0


def undelivered_round(runtime: ThreadRuntime, spec: InstanceSpec, client: pulsar.Client) -> int:
    """Send rounds of 50 messages until one is not processed within 3 s (with the
    ghost, pulsar-lite's Shared dispatcher holds every other round until the next
    publish); the round's number."""
    for round_number in range(6):
        before = processed(runtime, spec)
        produce(client, "ghosted-in", [f"late-{round_number}-{i}".encode() for i in range(50)])
        target = before + 50
        if not wait_until(lambda: processed(runtime, spec) >= target, 3):  # noqa: B023
            return round_number
    pytest.skip("pulsar-lite delivered every round: no ghost stall to observe on this broker")


def error_within(runtime: ThreadRuntime, spec: InstanceSpec, seconds: float) -> str:
    """The status error once it is non-empty (fails after ``seconds``)."""
    assert wait_until(lambda: runtime.status(spec.instance).error != "", seconds), runtime.status(
        spec.instance
    )
    return runtime.status(spec.instance).error


def test_an_instance_whose_broker_is_gone_says_it_is_not_connected(
    own_runtime: ThreadRuntime, portal: BlockingPortal, fresh_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    spec = echo_spec(tmp_path, fresh_broker, "gone")
    portal.call(own_runtime.start, spec)
    assert wait_until(lambda: own_runtime.status(spec.instance).running)
    assert own_runtime.status(spec.instance).error == ""

    fresh_broker.process.send_signal(signal.SIGKILL)
    fresh_broker.process.wait()
    killed = time.monotonic()
    error = error_within(own_runtime, spec, SHOWN_WITHIN)

    assert error.startswith("no progress: not connected to the broker for "), error
    assert time.monotonic() - killed <= SHOWN_WITHIN
    assert own_runtime.metrics(spec.instance).stalled_seconds >= 5.0  # type: ignore[union-attr]


def test_input_the_broker_does_not_deliver_shows_as_no_progress(
    own_runtime: ThreadRuntime, portal: BlockingPortal, fresh_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """pulsar-lite keeps a consumer whose process died with unread data in its socket
    as a ghost (docs/coordination.md); while the ghost holds permits, the Shared
    subscription delivers nothing to anyone. The function's own consumer is healthy
    and idle, so only a look at the broker's backlog tells the truth."""
    spec = echo_spec(tmp_path, fresh_broker, "ghosted")
    client = pulsar.Client(fresh_broker.url, operation_timeout_seconds=5)
    ghost: subprocess.Popen[bytes] | None = None
    try:
        portal.call(own_runtime.start, spec)
        produce(client, "ghosted-in", [f"early-{i}".encode() for i in range(30)])
        assert wait_until(lambda: processed(own_runtime, spec) >= 30)

        ghost = subprocess.Popen(
            [sys.executable, "-c", GHOST, fresh_broker.url, "ghosted-in", "public/default/ghosted"],
            stdout=subprocess.PIPE,
        )
        assert ghost.stdout is not None and ghost.stdout.readline() == b"subscribed\n"
        ghost.send_signal(signal.SIGSTOP)  # it stops reading: data piles up in its socket
        produce(client, "ghosted-in", [f"pinned-{i}".encode() for i in range(300)])
        assert wait_until(lambda: unread_bytes(ghost.pid) > 0, 10), "nothing reached the ghost"
        ghost.send_signal(signal.SIGKILL)  # a reset connection: pulsar-lite keeps the ghost
        ghost.wait()
        stalled_round = undelivered_round(own_runtime, spec, client)
        sent = time.monotonic()

        error = error_within(own_runtime, spec, SHOWN_WITHIN)
        assert error.startswith("no progress: nothing received for "), error
        assert "while input has backlog" in error, error
        assert time.monotonic() - sent <= SHOWN_WITHIN, stalled_round
        assert own_runtime.status(spec.instance).running
        assert own_runtime.metrics(spec.instance).stalled_seconds >= 10.0  # type: ignore[union-attr]
    finally:
        if ghost is not None and ghost.poll() is None:
            ghost.kill()
            ghost.wait()
        client.close()
