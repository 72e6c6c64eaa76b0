"""No instance process outlives its worker, whatever the instance is doing.

A real ``fnworker standalone`` worker on the process runtime, on the session's real
pulsar-lite broker, runs ``PARALLELISM`` instances of each case:

(a) **blocked in subscribe**: this test holds the function's subscription with an
    Exclusive consumer first, so pulsar-lite refuses the instances' Shared
    consumers and their client retries until its 30 s operation timeout;
(b) **inside user code** that sleeps 60 s (tests/fixtures/functions/sleepy_function.py);
(c) **processing a stream** that a producer thread keeps feeding.

SIGKILL of the worker then must leave no instance process after
``ORPHAN_BOUND_SECONDS`` (checked by pid and start time in /proc, so a reused pid
never counts), and each instance's log must say why it stopped. SIGTERM of such a
worker must end it and every instance within its ``gracePeriodSeconds`` plus the
worker's own shutdown. Every process is ended by PID in the fixtures.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker
from fnworker.runtimes.process.pid_files import proc_stat, start_ticks
from tests.e2e.conftest import StandaloneWorker, launch, stop, wait_ready
from tests.e2e.helpers import BASE, call, function_form, wait_for
from tests.integration.conftest import EXAMPLES, FUNCTIONS

ORPHAN_BOUND_SECONDS = 2.0
"""The stated bound (docs/process-runtime.md): the watchdog orders a stop within
0.1 s of the worker's death, the graceful stop gets 1.0 s, then os._exit (and a
kernel timer 0.5 s later if no Python thread can run)."""
GRACE_SECONDS = 2
"""``gracePeriodSeconds`` of the workers here: SIGTERM, then SIGKILL after 2 s."""
WORKER_STOP_OVERHEAD_SECONDS = 3.0
"""What a worker's own shutdown may add to the grace (closing clients, the REST server)."""
PARALLELISM = 4
ROUNDS = 4
# Repetitions: each round kills one worker holding PARALLELISM instances of every
# case, so each case is tried PARALLELISM x ROUNDS = 16 times per run. A race that
# left 1 instance in 5 behind would pass unnoticed with probability 0.8**16 = 0.03;
# even if the race struck per kill rather than per instance, 0.8**4 = 0.41 per case
# and 0.8**12 = 0.07 for the three cases together. Four rounds keep the module
# around a minute on the loaded 2-core machine (each round starts 12 processes).

Pid = tuple[int, int]
"""A process as (pid, start time in clock ticks): a reused pid is another process."""


def alive(process: Pid) -> bool:
    """True while that very process exists and is not a zombie."""
    return start_ticks(process[0]) == process[1]


def kill_leftovers(processes: list[Pid]) -> None:
    """SIGKILL every process of the list that is still that process."""
    for process in processes:
        if alive(process):
            os.kill(process[0], signal.SIGKILL)


def children_of(parent: int) -> Iterator[Pid]:
    """Every live process whose parent is ``parent``, from /proc/<pid>/stat."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = proc_stat(int(entry.name))
        if fields and fields[0] != "Z" and int(fields[1]) == parent:
            yield int(entry.name), int(fields[19])


wait_until = functools.partial(wait_for, every=0.05)
"""Poll a condition every 50 ms; fail naming what after the timeout."""


EXCLAMATION = (EXAMPLES / "exclamation_function.py", "exclamation_function.ExclamationFunction")
SLEEPY = (FUNCTIONS / "sleepy_function.py", "sleepy_function.process")


class Function(NamedTuple):
    """One function a round registers."""

    case: str
    name: str
    parallelism: int
    package: Path
    class_name: str


class Round:
    """One worker with the three kinds of busy instances, and what they need.

    (a) is one function with PARALLELISM instances (they all subscribe to one
    subscription, as in issue 18); (b) and (c) are PARALLELISM functions of one
    instance each, so every instance surely gets messages (pulsar-lite's Shared
    dispatch across processes sometimes starves one consumer, which is not what
    this test is about)."""

    def __init__(self, root: Path, broker: EmbeddedBroker, tag: str) -> None:
        self.root = root
        self.broker = broker
        self.blocked = Function("blocked", f"{tag}blocked", PARALLELISM, *EXCLAMATION)
        self.sleepy = [
            Function("sleepy", f"{tag}sleepy{i}", 1, *SLEEPY) for i in range(PARALLELISM)
        ]
        self.stream = [
            Function("stream", f"{tag}stream{i}", 1, *EXCLAMATION) for i in range(PARALLELISM)
        ]
        self.functions = [self.blocked, *self.sleepy, *self.stream]
        self.client = pulsar.Client(broker.url, operation_timeout_seconds=10)
        self.worker: StandaloneWorker | None = None
        self.processes: list[Pid] = []
        self.feeding = threading.Event()
        self.feeder: threading.Thread | None = None

    # -- setting up ------------------------------------------------------------------

    def start_worker(self) -> StandaloneWorker:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "worker.yml"
        config.write_text(
            json.dumps(
                {
                    "functionRuntimeFactoryClassName": "process",
                    "coordinationBackend": "memory",
                    "functionRuntimeFactoryConfigs": {
                        "logDirectory": str(self.root / "logs"),
                        "gracePeriodSeconds": GRACE_SECONDS,
                    },
                }
            )
        )
        self.worker = launch(
            self.root / "state", "--config", str(config), "--broker-url", self.broker.url
        )
        wait_ready(self.worker)
        return self.worker

    def register_all(self) -> None:
        """Hold (a)'s subscription first, then register every function."""
        self.client.subscribe(
            f"{self.blocked.name}-in",
            f"public/default/{self.blocked.name}",
            consumer_type=pulsar.ConsumerType.Exclusive,
        )
        for function in self.functions:
            config = {
                "className": function.class_name,
                "inputs": [f"{function.name}-in"],
                "output": f"{function.name}-out",
                "parallelism": function.parallelism,
            }
            form = function_form(config, function.package)
            reply = call(self.admin_url, "POST", f"{BASE}/{function.name}", form)
            assert reply.status == 200, reply.body

    @property
    def admin_url(self) -> str:
        assert self.worker is not None
        return self.worker.admin_url

    def log_text(self, name: str, index: int) -> str:
        path = self.root / f"logs/functions/public/default/{name}/{name}-{index}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, functions: list[Function]) -> Iterator[tuple[str, str]]:
        """(instance, its log text) of every instance of ``functions``."""
        for function in functions:
            for index in range(function.parallelism):
                yield f"{function.name}:{index}", self.log_text(function.name, index)

    def every_log_has(self, functions: list[Function], text: str) -> bool:
        return all(text in log for _, log in self.logs(functions))

    def statuses(self, function: Function) -> list[dict[str, Any]]:
        reply = call(self.admin_url, "GET", f"{BASE}/{function.name}/status")
        return [i["status"] for i in reply.json()["instances"]] if reply.status == 200 else []

    def all_running(self, functions: list[Function]) -> bool:
        return all(
            all(s["running"] for s in self.statuses(f)) and len(self.statuses(f)) == f.parallelism
            for f in functions
        )

    def all_received(self, functions: list[Function]) -> bool:
        return all(all(s["numReceived"] > 0 for s in self.statuses(f)) for f in functions)

    def feed(self, topics: list[str]) -> None:
        """Keep sending to ``topics`` (about 500 msg/s each) until ``feeding`` is cleared."""
        producers = [self.client.create_producer(t, batching_enabled=True) for t in topics]
        try:
            while self.feeding.is_set():
                for number in range(10):
                    for producer in producers:
                        producer.send_async(f"m{number}".encode(), None)
                time.sleep(0.02)
            for producer in producers:
                producer.flush()
        finally:
            for producer in producers:
                producer.close()

    def make_busy(self) -> None:
        """Bring every instance into its state: (a) refused, (b) asleep, (c) consuming."""
        wait_until(lambda: self.all_running(self.sleepy), 60, "sleepy functions running")
        for function in self.sleepy:
            producer = self.client.create_producer(f"{function.name}-in")
            producer.send(b"nap")
            producer.close()
        wait_until(lambda: self.all_running(self.stream), 60, "stream functions running")
        self.feeding.set()
        topics = [f"{function.name}-in" for function in self.stream]
        self.feeder = threading.Thread(target=self.feed, args=(topics,), daemon=True)
        self.feeder.start()
        wait_until(lambda: self.all_received(self.stream), 30, "stream functions consuming")
        asleep = "sleeping in process"
        wait_until(lambda: self.every_log_has(self.sleepy, asleep), 30, "sleepy ones asleep")
        refused = "Temporary error in creating consumer"
        wait_until(lambda: self.every_log_has([self.blocked], refused), 30, "blocked refused")
        assert not any("instance started" in log for _, log in self.logs([self.blocked]))
        self.processes = self.instance_processes()

    def instance_processes(self) -> list[Pid]:
        """The worker's instance processes: its children in /proc, which must be
        exactly those its pid files name."""
        assert self.worker is not None
        worker_pid = self.worker.process.pid
        children = set(children_of(worker_pid))
        recorded = set()
        for path in sorted((self.root / "state/processes").rglob("*.pid")):
            record = json.loads(path.read_text())
            assert record["worker_pid"] == worker_pid
            recorded.add((record["pid"], record["start_ticks"]))
        assert children == recorded and len(children) == 3 * PARALLELISM, (children, recorded)
        return sorted(children)

    def close(self) -> None:
        self.feeding.clear()
        if self.feeder is not None:
            self.feeder.join(timeout=10)
        if self.worker is not None:
            stop(self.worker)
        kill_leftovers(self.processes)
        self.client.close()


@pytest.fixture
def new_round(tmp_path: Path, broker: EmbeddedBroker) -> Iterator[Callable[[], Round]]:
    """Rounds made by the test, each closed (worker and instance processes killed by PID)."""
    rounds: list[Round] = []

    def make() -> Round:
        tag = f"r{os.getpid() % 1000}x{len(rounds)}x{time.time_ns() % 10**6}"
        made = Round(tmp_path / f"round{len(rounds)}", broker, tag)
        rounds.append(made)
        return made

    yield make
    for made in rounds:
        made.close()


def gone_after(processes: list[Pid], began: float, bound: float) -> float:
    """Seconds from ``began`` until every process is gone; fails after ``bound`` s."""
    deadline = began + bound
    while any(alive(p) for p in processes):
        if time.monotonic() > deadline:
            left = [p[0] for p in processes if alive(p)]
            raise AssertionError(f"instance processes {left} still alive {bound} s later")
        time.sleep(0.01)
    return time.monotonic() - began


ORPHAN_REASONS = (
    "the worker process (pid",
    "stopped supervising this instance (parent-death signal)",
    "the worker closed the control channel",
)


def test_no_instance_process_outlives_a_sigkilled_worker(
    new_round: Callable[[], Round],
) -> None:
    measured = []
    for _ in range(ROUNDS):
        busy = new_round()
        worker = busy.start_worker()
        busy.register_all()
        busy.make_busy()

        began = time.monotonic()
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=5)
        measured.append(gone_after(busy.processes, began, ORPHAN_BOUND_SECONDS))

        for instance, text in busy.logs(busy.functions):
            stopping = [line for line in text.splitlines() if "instance stopping:" in line]
            assert stopping, (instance, text[-2000:])
            assert any(reason in stopping[0] for reason in ORPHAN_REASONS), stopping
            assert "exiting within 1.0 s" in stopping[0], stopping
    print(f"worker SIGKILL -> last instance gone: {', '.join(f'{s:.2f} s' for s in measured)}")


def test_sigterm_stops_the_worker_and_its_stuck_instances_within_the_grace(
    new_round: Callable[[], Round],
) -> None:
    busy = new_round()
    worker = busy.start_worker()
    busy.register_all()
    busy.make_busy()

    began = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    bound = GRACE_SECONDS + WORKER_STOP_OVERHEAD_SECONDS
    worker.process.wait(timeout=bound + 10)
    took = time.monotonic() - began
    assert took <= bound, f"the worker took {took:.1f} s to stop"
    assert not [p for p in busy.processes if alive(p)]
    for instance, text in busy.logs(busy.functions):
        assert "instance stopping: asked to stop (SIGTERM)" in text, (instance, text[-2000:])
    print(f"worker SIGTERM -> worker gone: {took:.2f} s")
