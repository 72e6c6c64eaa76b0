"""Fault containment with real worker processes on a real (pulsar-lite) broker:
ordinary functions keep producing while a function with thousands of input topics
starts, runs and is deleted; an instance stuck in user code says so in its status
and metrics; a SIGTERMed worker stops within its bound whatever its thread-runtime
instances are doing. Speed is measured in bench/containment_bench.py, not here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker
from tests.conftest import quiet_client
from tests.e2e.helpers import call
from tests.integration.worker_process import (
    FUNCTIONS,
    WorkerProcess,
    fill,
    metric_value,
    running,
    start_worker,
    stop_worker,
    wait_for,
)

pytestmark = [pytest.mark.timeout(240)]

STUCK = FUNCTIONS / "stuck_function.py"
ECHO = {"className": "stuck_function.process"}
ORDINARY = 10
HEAVY_TOPICS = 2000
PROBE_SECONDS = 5.0
"""Every ordinary function must answer a probe within this long (it takes milliseconds
alone; on one shared client, a 2,000-topic subscribe held the connection for ~10 s)."""
STALL_SHOWN_WITHIN = 16.0
"""fnworker/runtimes/instance/progress.py reports a stuck instance after 10 s; polling and a
loaded machine get the rest."""


@pytest.fixture
def containment_client(fresh_broker: EmbeddedBroker) -> Iterator[pulsar.Client]:
    with quiet_client(fresh_broker.url, "containment-test-client") as client:
        yield client


@dataclass
class Prober:
    """Sends one message to every ordinary function and waits for all their outputs."""

    names: list[str]
    producers: dict[str, pulsar.Producer]
    outputs: pulsar.Consumer
    rounds: list[tuple[float, float, list[str]]] = field(default_factory=list)

    def probe(self) -> None:
        """One round: record (start, seconds, functions that did not answer in time)."""
        round_id = len(self.rounds)
        began = time.monotonic()
        expected = {f"probe-{round_id}-{name}" for name in self.names}
        for name in self.names:
            self.producers[name].send(f"probe-{round_id}-{name}".encode())
        while expected and time.monotonic() - began < PROBE_SECONDS:
            try:
                message = self.outputs.receive(100)
            except pulsar.Timeout:
                continue
            self.outputs.acknowledge(message)
            expected.discard(message.data().decode())
        missing = sorted(text.rsplit("-", 1)[1] for text in expected)
        self.rounds.append((began, time.monotonic() - began, missing))

    def late(self) -> list[tuple[float, float, list[str]]]:
        return [entry for entry in self.rounds if entry[2]]


def held(worker: WorkerProcess) -> list[str]:
    """The instances the worker's runtime holds, running or still opening."""
    reply = call(worker.admin_url, "GET", "/admin/v2/worker-stats/functionsmetrics")
    return [one["name"] for one in reply.json()]


def test_ordinary_functions_keep_flowing_while_a_heavy_function_starts_runs_and_is_deleted(
    fresh_broker: EmbeddedBroker, containment_client: pulsar.Client, tmp_path: Path
) -> None:
    worker = start_worker(tmp_path, fresh_broker.url, maxInputTopicsPerFunction=HEAVY_TOPICS)
    try:
        names = [f"ordinary{i}" for i in range(ORDINARY)]
        for name in names:
            worker.register(name, STUCK, **ECHO, inputs=[f"{name}-in"], output=f"{name}-out")
        prober = Prober(
            names,
            {name: containment_client.create_producer(f"{name}-in") for name in names},
            containment_client.subscribe(
                [f"{name}-out" for name in names],
                "probe",
                consumer_type=pulsar.ConsumerType.Shared,
                initial_position=pulsar.InitialPosition.Earliest,
            ),
        )
        wait_for(lambda: all(running(worker, n) for n in names), 60, "ordinary functions run")
        prober.probe()
        assert not prober.late(), f"ordinary functions do not answer even alone: {prober.rounds}"

        heavy_inputs = [f"heavy-in-{i}" for i in range(HEAVY_TOPICS)]
        worker.register("heavy", STUCK, **ECHO, inputs=heavy_inputs)
        began = time.monotonic()
        while not running(worker, "heavy"):
            assert time.monotonic() - began < 120, f"heavy: {worker.instance_status('heavy')}"
            prober.probe()
            time.sleep(0.2)  # probe pacing while heavy subscribes (the load under test)
        subscribed_after = time.monotonic() - began
        for _ in range(3):
            prober.probe()
        worker.delete("heavy")
        deleted = time.monotonic()
        while time.monotonic() - deleted < 5:  # the 5 s after the delete are under test
            prober.probe()
            time.sleep(0.2)  # probe pacing

        assert len(prober.rounds) > 5, prober.rounds
        assert not prober.late(), (
            f"ordinary functions stopped answering within {PROBE_SECONDS} s while the "
            f"{HEAVY_TOPICS}-topic function subscribed ({subscribed_after:.1f} s): "
            f"{prober.late()}"
        )
    finally:
        stop_worker(worker)


def test_an_instance_stuck_in_user_code_shows_no_progress_in_status_and_metrics(
    broker: EmbeddedBroker, tmp_path: Path, unique_name: str
) -> None:
    """Thread and process runtime side by side, each on a worker of its own, so the
    10 s before a stall shows is waited out once for both."""
    runtimes = ("thread", "process")
    workers: dict[str, WorkerProcess] = {}
    client = pulsar.Client(broker.url, operation_timeout_seconds=10)
    names = {runtime: f"{unique_name}{runtime}" for runtime in runtimes}
    try:
        for runtime in runtimes:
            workers[runtime] = start_worker(tmp_path / runtime, broker.url, runtime)
        for runtime, name in names.items():
            workers[runtime].register(
                name, STUCK, **ECHO, inputs=[f"{name}-in"], output=f"{name}-out"
            )
        for runtime, name in names.items():
            wait_for(lambda w=workers[runtime], n=name: running(w, n), 60, f"{runtime} runs")
        sent = {}
        for name in names.values():
            fill(client, f"{name}-in", [b"before", b"stuck", b"after"])
            sent[name] = time.monotonic()
        for runtime, name in names.items():
            worker = workers[runtime]
            wait_for(
                lambda w=worker, n=name: w.instance_status(n).get("numReceived", 0) >= 2, 20, name
            )
            assert worker.instance_status(name)["error"] == ""
        for runtime, name in names.items():
            worker = workers[runtime]
            status = wait_for(
                lambda w=worker, n=name: (s := w.instance_status(n))["error"] and s,
                STALL_SHOWN_WITHIN,
                f"the {runtime} instance's error",
            )
            shown_after = time.monotonic() - sent[name]
            assert status["running"] is True, status
            assert status["error"].startswith("no progress for "), status
            assert "while input has backlog" in status["error"], status
            assert "stuck_function.py" in status["error"], status  # where it is stuck
            assert shown_after <= STALL_SHOWN_WITHIN, (runtime, shown_after)
            text = worker.metrics_text()
            stalled = metric_value(text, "pulsar_function_stalled_seconds", name)
            assert stalled is not None and stalled >= 10.0, text
    finally:
        client.close()
        for worker in workers.values():
            stop_worker(worker)


def test_a_sigtermed_worker_stops_within_its_bound_whatever_its_instances_do(
    fresh_broker: EmbeddedBroker, containment_client: pulsar.Client, tmp_path: Path
) -> None:
    """Two instances inside user code sleeping 60 s and one still subscribing to
    2,000 topics: with gracePeriodSeconds 2, the thread runtime abandons what does
    not stop within 2 + 3 x 1 s and the worker ends gracefully (not by launch.py's
    10 s last-resort exit)."""
    worker = start_worker(
        tmp_path,
        fresh_broker.url,
        factory={"gracePeriodSeconds": 2},
        maxInputTopicsPerFunction=HEAVY_TOPICS,
    )
    try:
        stuck = ["stuck0", "stuck1"]
        for name in stuck:
            worker.register(name, STUCK, **ECHO, inputs=[f"{name}-in"], output=f"{name}-out")
        wait_for(lambda: all(running(worker, n) for n in stuck), 60, "stuck functions run")
        for name in stuck:
            fill(containment_client, f"{name}-in", [b"stuck"])
        wait_for(
            lambda: all(worker.instance_status(n)["numReceived"] >= 1 for n in stuck),
            20,
            "both are inside user code",
        )
        worker.register("heavy", STUCK, **ECHO, inputs=[f"heavy-in-{i}" for i in range(2000)])
        wait_for(lambda: "public/default/heavy:0" in held(worker), 30, "heavy is opening")
        assert not running(worker, "heavy")  # still subscribing (that takes ~10 s)

        began = time.monotonic()
        stop_worker(worker, timeout=30)
        took = time.monotonic() - began
        log = worker.log()
        assert worker.process.returncode == 0, log[-3000:]
        # Within the bound, so not by launch.py's 10 s last-resort exit either.
        assert took < 9.0, f"SIGTERM took {took:.1f} s:\n{log[-3000:]}"
    finally:
        stop_worker(worker)
