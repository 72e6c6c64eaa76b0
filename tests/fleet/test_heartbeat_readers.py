"""Only the leader reads the heartbeats topic (issue 15 point 4, part A): on a real
3-worker fleet the broker's own per-subscription metrics show one live reader on
``coordinate-heartbeats``, not three; after the leader is SIGKILLed the new leader
opens one, and it still detects a killed worker.

A reader is *live* when its subscription's ``pulsar_out_messages_total`` grows while
the workers heartbeat (every 200 ms each): the broker keeps listing a closed
reader's subscription, but sends it nothing more. The broker here is pulsar-lite
started by the test with its metrics listener on a loopback port (the embedded
broker turns metrics off), stopped by its PID."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pulsar_lite.binary_finder import find_pulsar_lite_binary

from fnworker.coordination.embedded_broker import free_loopback_port
from tests.fleet.conftest import Fleet, eventually, leader_seen_by_all

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

OUT_MESSAGES = re.compile(
    r'^pulsar_out_messages_total\{[^}]*subscription="(?P<sub>[^"]+)",'
    r'topic="(?P<topic>[^"]+)"\} (?P<count>[0-9.e+]+)$'
)
HEARTBEATS = "coordinate-heartbeats"


@dataclass
class MeteredBroker:
    """pulsar-lite with metrics on loopback."""

    process: subprocess.Popen[bytes]
    url: str
    metrics_url: str

    def sent_per_subscription(self, topic: str) -> dict[str, float]:
        """``pulsar_out_messages_total`` of every subscription on ``topic``."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as reply:
            text = reply.read().decode()
        found = {}
        for line in text.splitlines():
            match = OUT_MESSAGES.match(line)
            if match and match["topic"] == topic:
                found[match["sub"]] = float(match["count"])
        return found

    def live_readers(self, topic: str, window: float = 1.0) -> set[str]:
        """The subscriptions on ``topic`` the broker sent messages to within ``window`` s."""
        before = self.sent_per_subscription(topic)
        time.sleep(window)  # a measuring window, not a wait for a condition
        after = self.sent_per_subscription(topic)
        return {sub for sub, count in after.items() if count > before.get(sub, 0.0)}


def wait_accepting(port: int, process: subprocess.Popen[bytes]) -> None:
    """Poll the broker's port until it accepts (or fail when it exits)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, "broker exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("broker did not accept connections")


@pytest.fixture
def metered_fleet(tmp_path: Path) -> Iterator[tuple[Fleet, MeteredBroker]]:
    """A pulsar-lite broker with metrics on loopback, and a fleet on it."""
    port, metrics_port = free_loopback_port(), free_loopback_port()
    data = tmp_path / "broker"
    data.mkdir()
    config = data / "pulsar-lite.toml"
    config.write_text(
        'log_level = "warn"\nkeep_alive_interval_secs = 2\n'
        "connection_liveness_check_timeout_secs = 2\n"
        f'[metrics]\nenabled = true\naddr = "127.0.0.1:{metrics_port}"\n'
    )
    command = [find_pulsar_lite_binary(), "--config", str(config)]
    command += ["--addr", f"127.0.0.1:{port}", "--db-path", str(data / "db"), "--log-level", "warn"]
    with (data / "broker.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=data)
    broker = MeteredBroker(
        process, f"pulsar://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    )
    fleet = Fleet(broker_url=broker.url, root=tmp_path)
    try:
        wait_accepting(port, process)
        yield fleet, broker
    finally:
        fleet.stop_all()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_only_the_leader_reads_heartbeats_and_a_new_leader_takes_over_reading(
    metered_fleet: tuple[Fleet, MeteredBroker],
) -> None:
    fleet, broker = metered_fleet
    for name in ("w1", "w2", "w3"):
        fleet.start(name)
    leader = eventually(lambda: leader_seen_by_all(fleet.alive()), 60, "one leader seen by all")
    first = eventually(
        lambda: (live := broker.live_readers(HEARTBEATS)) and len(live) == 1 and live,
        30,
        "exactly one live reader on the heartbeats topic",
    )
    assert len(broker.live_readers(HEARTBEATS)) == 1, "a second reader appeared"

    known = set(broker.sent_per_subscription(HEARTBEATS))
    fleet.kill(leader)
    survivors = fleet.alive()
    new_leader = eventually(lambda: leader_seen_by_all(survivors), 30, "a new leader")
    assert new_leader != leader

    def the_new_leaders_reader() -> set[str] | None:
        live = broker.live_readers(HEARTBEATS)
        return live if len(live) == 1 and not live & known else None

    second = eventually(the_new_leaders_reader, 30, "one new live reader, not an old one")
    assert second != first

    victim = next(w for w in survivors if w.name != new_leader)
    fleet.kill(victim.name)
    remaining = fleet.alive()
    assert eventually(lambda: leader_seen_by_all(remaining), 30, "the killed worker dropped")
