"""No knobs for one broker's bugs: workers on pulsar-lite find out at start that it is
pulsar-lite (its CONNECTED names its version) and keep the consumers of one
subscription from clashing across processes by themselves, with no
``pulsarLiteConsumerIdSlots`` in their configs; an instance that still cannot
subscribe says so in its status within seconds. Real worker processes, the real
broker; timings are bounds, not measurements."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.fleet.conftest import (
    Fleet,
    FleetWorker,
    eventually,
    holders,
    leader_seen_by_all,
    register,
)
from tests.integration.worker_process import RUNTIME_CLASSES

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        bool(os.environ.get("FNWORKER_REAL_PULSAR_URL")), reason="pulsar-lite's behaviour"
    ),
]


def process_worker(fleet: Fleet, name: str, **extra: Any) -> FleetWorker:
    """A process-runtime worker of the fleet, its instance logs under the test's root."""
    return fleet.start(
        name,
        functionRuntimeFactoryClassName=RUNTIME_CLASSES["process"],
        functionRuntimeFactoryConfigs={"logDirectory": str(fleet.root / name / "logs")},
        **extra,
    )


def instance_statuses(worker: FleetWorker, name: str) -> dict[int, dict[str, Any]]:
    """Instance index -> its status, as the function's status says."""
    reply = worker.json(f"/admin/v3/functions/public/default/{name}/status")
    return {entry["instanceId"]: entry["status"] for entry in reply["instances"]}


def says_pulsar_lite_with_the_workaround(worker: FleetWorker) -> bool:
    return any(
        "start-up: broker kind" in line
        and "broker='pulsar-lite'" in line
        and "consumer_id_workaround='on, 16 slots'" in line
        for line in worker.log().splitlines()
    )


def test_a_fleet_without_the_key_runs_every_instance(fleet: Fleet) -> None:
    """6 instances on 3 workers all run (seen without detection: 2 of 6 after 30 s)."""
    workers = [fleet.start(name) for name in ("w1", "w2", "w3")]
    eventually(lambda: leader_seen_by_all(workers), 60, "one leader seen by all")
    register(workers[0], "spread", parallelism=6)

    def all_six_run_once() -> bool:
        running = holders(workers)
        return len(running) == 6 and all(len(held) == 1 for held in running.values())

    eventually(all_six_run_once, 60, "all 6 instances run, each on one worker")
    placed = {worker for held in holders(workers).values() for worker in held}
    assert placed == {"w1", "w2", "w3"}
    assert all(says_pulsar_lite_with_the_workaround(worker) for worker in workers)


def test_a_process_runtime_worker_without_the_key_runs_both_instances(fleet: Fleet) -> None:
    """Seen without detection: instance 1 'is starting' forever, its consumer refused."""
    worker = process_worker(fleet, "p1")
    eventually(lambda: leader_seen_by_all([worker]), 60, "the worker leads itself")
    register(worker, "pair", parallelism=2)

    def both_run() -> bool:
        statuses = instance_statuses(worker, "pair")
        return len(statuses) == 2 and all(s["running"] for s in statuses.values())

    eventually(both_run, 60, "both instances run")
    assert says_pulsar_lite_with_the_workaround(worker)


def test_an_instance_that_cannot_subscribe_says_so_within_seconds(fleet: Fleet) -> None:
    """The workaround forced off: instance 1's consumer clashes with instance 0's and its
    subscribe is never answered. Its status says what it waits for within ~10 s,
    instead of a bare 'the instance process is starting' until the subscribe fails."""
    worker = process_worker(fleet, "p1", pulsarLiteConsumerIdSlots=0)
    eventually(lambda: leader_seen_by_all([worker]), 60, "the worker leads itself")
    register(worker, "clash", parallelism=2)
    eventually(
        lambda: any(s["running"] for s in instance_statuses(worker, "clash").values()),
        60,
        "one instance runs",
    )
    began = time.monotonic()

    def stuck_one_explains() -> str | None:
        for status in instance_statuses(worker, "clash").values():
            if not status["running"] and "subscribing to its input" in status["error"]:
                return str(status["error"])
        return None

    error = eventually(stuck_one_explains, 20, "the stuck instance says what it waits for")
    assert time.monotonic() - began < 15, error
    assert "has not started after" in error
