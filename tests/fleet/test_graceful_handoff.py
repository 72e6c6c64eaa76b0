"""A rolling restart of a 3-worker fleet (each worker in turn SIGTERMed, waited
for, started again with the same id) under a steady message stream: a graceful
stop hands its instances over before it stops them (docs/coordination.md,
"Graceful stop: hand-off"), so no message is lost and the output never pauses
for longer than about one instance move. Real worker processes on the real broker.

Timings are measured by bench/, not asserted here; the gap bound below is a
correctness bound (an instance that stopped before its successor ran leaves the
function without a consumer), with slack for a loaded 2-core machine. What fails
without the hand-off is the order the workers' logs show: a stopping worker used
to stop each instance before its successor started (measured here: pauses of
0.5-0.6 s per move, within the bound on a quiet machine); with the hand-off every
successor starts first."""

from __future__ import annotations

import re
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pulsar
import pytest

from tests.fleet.conftest import (
    Fleet,
    FleetWorker,
    eventually,
    holders,
    leader_seen_by_all,
    register,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

SETTINGS: dict[str, Any] = {"workerDeadTimeoutMs": 3000, "rebalanceOnJoinEnabled": False}
"""A longer dead timeout keeps a loaded machine from declaring live workers dead (a
graceful stop does not wait for it). A returning worker gets no share here: a join
move still stops the old copy when it starts the new one (only a stopping worker
hands off), and this test is about the stops."""
RATE = 50
"""Messages per second each producer sends."""
FUNCTIONS = ("relay0", "relay1", "relay2")
"""One instance each (one per worker): a function whose only instance stops before
its successor runs has no consumer at all. (With several instances on a Shared
subscription the others go on consuming, so the output would not pause anyway.)"""
GAP_BOUND = 1.0
"""The longest the output of one function may pause across the whole rolling
restart (issue 15: about one second per instance move)."""
RUNTIME_EVENT = re.compile(
    r"timestamp='(?P<at>[^']+)' level='info' logger='fnworker.runtime.thread' "
    r"event='instance (?P<kind>started|stopped)' instance='(?P<instance>[^']+)'"
)


class Stream:
    """A producer sending a numbered message every 1/RATE s, and a consumer noting
    when each output arrives (both threads of the test, on their own clients)."""

    def __init__(self, client: pulsar.Client, name: str) -> None:
        self.producer = client.create_producer(f"{name}-in")
        self.consumer = client.subscribe(
            f"{name}-out",
            "handoff-test",
            consumer_type=pulsar.ConsumerType.Shared,
            initial_position=pulsar.InitialPosition.Earliest,
        )
        self.sent: dict[str, float] = {}
        self.arrived: dict[str, float] = {}
        self.sending = threading.Event()
        self.receiving = threading.Event()
        self.threads = [
            threading.Thread(target=self.send_loop, daemon=True),
            threading.Thread(target=self.receive_loop, daemon=True),
        ]

    def start(self) -> None:
        self.sending.set()
        self.receiving.set()
        for thread in self.threads:
            thread.start()

    def send_loop(self) -> None:
        start = time.monotonic()
        index = 0
        while self.sending.is_set():
            value = f"m{index}"
            self.producer.send(value.encode())
            self.sent[value] = time.monotonic()
            index += 1
            pause = start + index / RATE - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    def receive_loop(self) -> None:
        while self.receiving.is_set():
            try:
                message = self.consumer.receive(timeout_millis=200)
            except pulsar.Timeout:
                continue
            value = message.data().decode().rstrip("!")
            self.arrived.setdefault(value, time.monotonic())
            self.consumer.acknowledge(message)

    def stop_sending(self) -> None:
        self.sending.clear()
        self.threads[0].join()

    def missing(self) -> set[str]:
        return set(self.sent) - set(self.arrived)

    def stop_receiving(self) -> None:
        self.receiving.clear()
        self.threads[1].join()

    def largest_gap(self) -> tuple[float, float]:
        """The longest pause between consecutive outputs, and when it began."""
        times = sorted(self.arrived[v] for v in self.sent if v in self.arrived)
        gaps = [(b - a, a) for a, b in zip(times, times[1:], strict=False)]
        return max(gaps) if gaps else (0.0, 0.0)

    def largest_delay(self) -> float:
        """The longest any message took from its send to its output."""
        return max(self.arrived[v] - at for v, at in self.sent.items() if v in self.arrived)


def each_instance_runs_once(workers: list[FleetWorker]) -> bool:
    running = holders(workers)
    return len(running) == len(FUNCTIONS) and all(len(w) == 1 for w in running.values())


class Stop:
    """One worker's graceful stop: when it was signalled and when it had exited (UTC,
    as the workers' log timestamps)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.signalled = now_utc()
        self.exited = ""

    def seconds(self) -> float:
        begin, end = (datetime.fromisoformat(t) for t in (self.signalled, self.exited))
        return (end - begin).total_seconds()


def now_utc() -> str:
    """Now, written as the workers' log timestamps are."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def runtime_events(worker: FleetWorker) -> list[tuple[str, str, str]]:
    """(when, started|stopped, instance) for every instance the worker's runtime
    started or stopped, across all its runs (its log is appended to)."""
    return [(m["at"], m["kind"], m["instance"]) for m in RUNTIME_EVENT.finditer(worker.log())]


def stopped_before_successor(fleet: Fleet, stop: Stop) -> list[str]:
    """The instances the stopping worker stopped before another worker started them
    (after the signal): each one a pause of its function's output."""
    stopped = [
        (at, instance)
        for at, kind, instance in runtime_events(fleet.workers[stop.name])
        if kind == "stopped" and stop.signalled <= at <= stop.exited
    ]
    others = [w for name, w in fleet.workers.items() if name != stop.name]
    started = [
        (at, instance)
        for worker in others
        for at, kind, instance in runtime_events(worker)
        if kind == "started" and at >= stop.signalled
    ]
    return [
        f"{instance} stopped at {at}"
        for at, instance in stopped
        if not any(i == instance and s <= at for s, i in started)
    ]


def restart(fleet: Fleet, name: str) -> Stop:
    """SIGTERM one worker, wait for it to exit, start it again with the same id and
    wait until the fleet sees it and every instance runs once."""
    stopping = fleet.workers[name]
    stop = Stop(name)
    fleet.signal(name, signal.SIGTERM)
    stopping.process.wait(timeout=60)
    stop.exited = now_utc()
    fleet.start(name, **SETTINGS)
    workers = list(fleet.workers.values())
    eventually(lambda: leader_seen_by_all(workers), 90, f"{name} back in the fleet")
    eventually(lambda: each_instance_runs_once(workers), 60, "every instance runs once")
    return stop


def test_a_rolling_restart_loses_nothing_and_never_pauses_long(
    fleet: Fleet, client: pulsar.Client
) -> None:
    workers = [fleet.start(name, **SETTINGS) for name in ("w1", "w2", "w3")]
    eventually(lambda: leader_seen_by_all(workers), 90, "one leader seen by all")
    for name in FUNCTIONS:
        register(workers[0], name)
    eventually(lambda: each_instance_runs_once(workers), 60, "every instance runs once")
    streams = [Stream(client, name) for name in FUNCTIONS]
    for stream in streams:
        stream.start()
    for stream in streams:
        eventually(lambda s=stream: len(s.arrived) >= RATE, 30, "the stream flows")
    stops = [restart(fleet, name) for name in ("w1", "w2", "w3")]
    time.sleep(1.0)  # the last restart under the stream too, not only the stops
    for stream in streams:
        stream.stop_sending()
    for stream in streams:
        eventually(lambda s=stream: not s.missing(), 60, "every message came out")
        stream.stop_receiving()
    summary = "; ".join(
        f"{name}: {len(s.sent)} messages, largest gap {s.largest_gap()[0]:.3f} s, "
        f"largest delay {s.largest_delay():.3f} s"
        for name, s in zip(FUNCTIONS, streams, strict=True)
    )
    summary += f"; stops took {[round(s.seconds(), 2) for s in stops]} s"
    print(summary)
    early = [f"{s.name}: {e}" for s in stops for e in stopped_before_successor(fleet, s)]
    assert not early, f"stopped before the successor started: {early}; {summary}"
    assert max(s.largest_gap()[0] for s in streams) <= GAP_BOUND, summary


def test_a_worker_alone_stops_without_a_hand_off(fleet: Fleet) -> None:
    # Nobody to hand over to (a standalone worker): it stops its instances at once.
    alone = fleet.start("w1", **SETTINGS)
    eventually(lambda: leader_seen_by_all([alone]), 90, "w1 leads itself")
    register(alone, "solo")
    eventually(lambda: holders([alone]), 60, "solo runs")
    fleet.signal("w1", signal.SIGTERM)
    alone.process.wait(timeout=60)
    assert "graceful stop: no hand-off" in alone.log()
    assert "handing instances off" not in alone.log()
    assert "worker stopped" in alone.log()
