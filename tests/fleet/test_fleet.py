"""A fleet of worker processes on one broker: membership, one leader, functions
visible everywhere, failover after SIGKILL and SIGSTOP, fencing of a frozen
leader, restarts, and clusters that never see each other. Timings are not
asserted here (bench/ measures them); only outcomes are."""

from __future__ import annotations

import signal
import time

import aiohttp
import pulsar
import pytest

from tests.e2e.helpers import BASE, call
from tests.fleet.conftest import (
    Fleet,
    FleetWorker,
    claims_by,
    eventually,
    holders,
    leader_seen_by_all,
    register,
    sessions_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def trigger(url: str, name: str, value: str) -> str | None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("data", value)
    reply = call(url, "POST", f"{BASE}/{name}/trigger", form)
    return reply.body.decode() if reply.status == 200 else None


def assignments(fleet: Fleet) -> dict[str, str]:
    """Instance -> worker, as the leader's table says (asked through any worker)."""
    worker = fleet.alive()[0]
    table = worker.json("/admin/v2/worker/assignments")
    return {instance: w for w, instances in table.items() for instance in instances}


def test_a_fleet_elects_one_leader_and_shares_functions(fleet: Fleet) -> None:
    workers = [fleet.start(name) for name in ("w1", "w2", "w3")]
    leader = eventually(lambda: leader_seen_by_all(workers), what="one leader seen by all")
    for index in range(6):
        register(workers[index % 3], f"f{index}")
    for worker in workers:
        names = eventually(lambda w=worker: len(w.json(f"{BASE}")) == 6 and w.json(f"{BASE}"))
        assert names == [f"f{i}" for i in range(6)]
    table = eventually(lambda: len(assignments(fleet)) == 6 and assignments(fleet))
    assert set(table.values()) == {"w1", "w2", "w3"}
    for index in range(6):
        answer = eventually(lambda i=index: trigger(workers[(i + 1) % 3].admin_url, f"f{i}", "hi"))
        assert answer == "hi!"
    status = workers[0].json(f"{BASE}/f1/status")
    assert (
        status["numRunning"] == 1
        and status["instances"][0]["status"]["workerId"] == table["public/default/f1:0"]
    )
    assert leader in {"w1", "w2", "w3"}


def test_a_killed_workers_instances_move_to_the_survivors(fleet: Fleet) -> None:
    workers = [fleet.start(name) for name in ("w1", "w2", "w3")]
    leader = eventually(lambda: leader_seen_by_all(workers))
    for index in range(6):
        register(workers[0], f"k{index}")
    table = eventually(lambda: len(assignments(fleet)) == 6 and assignments(fleet))
    victim = next(w for w in ("w1", "w2", "w3") if w != leader and w in table.values())
    moved = {i for i, w in table.items() if w == victim}
    fleet.kill(victim)
    survivors = fleet.alive()
    after = eventually(
        lambda: (t := assignments(fleet)) and len(t) == 6 and victim not in t.values() and t,
        what="the victim's instances reassigned",
    )
    assert {i: w for i, w in after.items() if i not in moved} == {
        i: w for i, w in table.items() if i not in moved
    }, "instances of live workers must not move"
    for instance in moved:
        name = instance.split("/")[2].split(":")[0]
        assert eventually(lambda n=name: trigger(survivors[0].admin_url, n, "again")) == "again!"


def processed(workers: list[FleetWorker]) -> dict[str, int]:
    """Instance -> messages it has processed, on the workers running it. The counters
    live with the running instance: one stopped and started again counts from 0."""
    counts = {}
    for worker in workers:
        for held in worker.json("/admin/v2/worker-stats/functionsmetrics"):
            if held["running"]:
                counts[held["name"]] = held["metrics"]["processedSuccessfullyTotal"]
    return counts


def test_a_killed_leader_is_replaced_and_survivors_keep_their_instances(fleet: Fleet) -> None:
    workers = [fleet.start(name) for name in ("w1", "w2", "w3")]
    old = eventually(lambda: leader_seen_by_all(workers))
    for index in range(6):
        register(workers[0], f"lead{index}")
    table = eventually(lambda: len(holders(workers)) == 6 and assignments(fleet))
    for index in range(6):
        assert eventually(lambda i=index: trigger(workers[0].admin_url, f"lead{i}", "w")) == "w!"
    eventually(lambda: len(c := processed(workers)) == 6 and all(c.values()), what="counted")
    moved = {i for i, w in table.items() if w == old}
    fleet.kill(old)
    survivors = fleet.alive()
    kept = processed(survivors)
    new = eventually(lambda: leader_seen_by_all(survivors), what="a new leader")
    assert new != old
    after = eventually(
        lambda: (t := assignments(fleet)) and len(t) == 6 and old not in t.values() and t,
        what="the old leader's instances reassigned",
    )
    # The new leader rebuilds its table from the survivors' reports: nothing they run moves.
    assert {i: w for i, w in after.items() if i not in moved} == {
        i: w for i, w in table.items() if i not in moved
    }, "instances of live workers must not move when the leader changes"
    for index in range(6):
        name = f"lead{index}"
        assert eventually(lambda n=name: trigger(survivors[0].admin_url, n, "x")) == "x!"
    # Every kept instance counts on from where it was: none was stopped and started again.
    eventually(
        lambda: (now := processed(survivors)) and all(now.get(i, 0) > kept[i] for i in kept),
        what=f"the survivors' instances count on from {kept}",
    )


def test_a_frozen_leader_is_fenced_and_every_instance_runs_once(fleet: Fleet) -> None:
    workers = [fleet.start(name) for name in ("w1", "w2", "w3")]
    old = eventually(lambda: leader_seen_by_all(workers))
    for index in range(6):
        register(workers[0], f"z{index}")
    eventually(lambda: len(holders(workers)) == 6, what="6 instances running")
    fleet.signal(old, signal.SIGSTOP)
    frozen_at = time.monotonic()
    others = [w for w in workers if w.name != old]
    new = eventually(lambda: leader_seen_by_all(others), what="a new leader while frozen")
    assert new != old
    eventually(lambda: len(holders(others)) == 6, what="all 6 running on the others")
    assert len(sessions_of(fleet, old)) == 1
    # The freeze under test: longer than the dead timeout (1 s), so on waking it must
    # notice and fence itself (failover can be done before that).
    time.sleep(max(0.0, frozen_at + 2.0 - time.monotonic()))
    fleet.signal(old, signal.SIGCONT)
    eventually(lambda: len(sessions_of(fleet, old)) == 2, what="the old leader fences itself")
    assert eventually(lambda: leader_seen_by_all(workers)) == new
    eventually(lambda: not holders([fleet.workers[old]]), what="the old leader runs nothing")
    running = holders(workers)
    assert len(running) == 6 and all(len(on) == 1 for on in running.values()), running


def test_a_worker_woken_from_a_freeze_fences_itself_and_claims_nothing(fleet: Fleet) -> None:
    workers = [fleet.start(name) for name in ("w1", "w2", "w3")]
    leader = eventually(lambda: leader_seen_by_all(workers))
    for index in range(6):
        register(workers[0], f"f{index}")
    eventually(lambda: len(holders(workers)) == 6, what="6 instances running")
    sleeper = next(w for w in workers if w.name != leader)
    # Claims it made while the fleet formed (a loaded start can have every worker
    # claim term 1; the first claim wins) are not what this test is about.
    claimed_before = claims_by(fleet, sleeper.name)
    fleet.signal(sleeper.name, signal.SIGSTOP)
    others = [w for w in workers if w is not sleeper]
    eventually(lambda: len(holders(others)) == 6, what="all 6 running on the others")
    # The freeze under test: longer than the dead timeout (1 s) and the lease timeout (600 ms).
    time.sleep(2.0)
    fleet.signal(sleeper.name, signal.SIGCONT)
    eventually(lambda: len(sessions_of(fleet, sleeper.name)) == 2, what="the sleeper fences")
    # Negative check over a window longer than the lease timeout + claim stagger: the
    # leases it slept through are unread when it wakes; it must not take them for a
    # silent leader and claim a term (that once left 150 instances with no runner).
    time.sleep(1.0)
    assert claims_by(fleet, sleeper.name) == claimed_before
    assert eventually(lambda: leader_seen_by_all(workers)) == leader
    running = eventually(lambda: (h := holders(workers)) and len(h) == 6 and h)
    assert all(len(on) == 1 for on in running.values()), running


@pytest.mark.requires_real_pulsar
def test_no_message_is_lost_when_a_worker_crashes(fleet: Fleet, client: pulsar.Client) -> None:
    # Runs against Apache Pulsar only: pulsar-lite skips its connection cleanup when
    # a connection ends in a reset (SIGKILL with unread socket data, as here), which
    # leaves a ghost Shared consumer that stalls the subscription and pins its
    # unacked messages (docs/coordination.md, "Ghost consumers lose messages").
    # A longer dead timeout keeps a loaded 2-core machine from fencing live workers.
    workers = [fleet.start(name, workerDeadTimeoutMs=3000) for name in ("w1", "w2", "w3")]
    leader = eventually(lambda: leader_seen_by_all(workers))
    register(workers[0], "safe")
    owner = eventually(lambda: assignments(fleet).get("public/default/safe:0"))
    if owner == leader:  # crash a worker that is not the leader, to test one thing at once
        call(workers[0].admin_url, "PUT", f"/admin/v2/worker/leader/drain?workerId={leader}")
        owner = eventually(
            lambda: (o := assignments(fleet).get("public/default/safe:0")) != leader and o
        )
    consumer = client.subscribe(
        "safe-out",
        "count",
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
    )
    producer = client.create_producer(
        "safe-in", batching_enabled=True, batching_max_publish_delay_ms=5
    )
    survivor = next(w for w in workers if w.name != owner)
    assert eventually(lambda: trigger(survivor.admin_url, "safe", "warm")) == "warm!"
    sent = [f"m{i}" for i in range(600)]
    for index, value in enumerate(sent):
        producer.send(value.encode())
        if index == 300:
            fleet.kill(owner)
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while not {f"{v}!" for v in sent} <= seen and time.monotonic() < deadline:
        try:
            message = consumer.receive(timeout_millis=500)
        except pulsar.Timeout:
            continue
        seen.add(message.data().decode())
        consumer.acknowledge(message)
    assert {f"{v}!" for v in sent} - seen == set()


def test_a_restarted_worker_resumes_its_own_instances(fleet: Fleet) -> None:
    slow = {"workerDeadTimeoutMs": 8000}
    workers = [fleet.start(name, **slow) for name in ("w1", "w2")]
    leader = eventually(lambda: leader_seen_by_all(workers))
    for index in range(4):
        register(workers[0], f"r{index}")
    table = eventually(lambda: len(assignments(fleet)) == 4 and assignments(fleet))
    other = "w2" if leader == "w1" else "w1"
    mine = {i for i, w in table.items() if w == other}
    assert mine
    fleet.kill(other)
    restarted = fleet.start(other, **slow)
    eventually(lambda: restarted.get("/initialized").status == 200)
    running = eventually(lambda: mine <= set(holders([restarted])) and holders([restarted]))
    assert set(running) >= mine
    assert assignments(fleet) == table, "a quick restart must not re-plan anything"


def test_two_clusters_on_one_broker_never_see_each_other(fleet: Fleet) -> None:
    east = [fleet.start(n, "public/functions-east-1", "east-1") for n in ("e1", "e2")]
    west = [fleet.start("x1", "public/functions-west-1", "west-1")]
    east_leader = eventually(lambda: leader_seen_by_all(east))
    west_leader = eventually(lambda: leader_seen_by_all(west))
    assert east_leader in {"e1", "e2"} and west_leader == "x1"
    register(east[0], "only-east")
    eventually(lambda: east[1].json(f"{BASE}") == ["only-east"])
    # West registers after east: once west sees its own function, it has read past
    # anything east could have written where west reads.
    register(west[0], "only-west")
    eventually(lambda: "only-west" in west[0].json(f"{BASE}"), what="west sees its function")
    assert west[0].json(f"{BASE}") == ["only-west"]
    assert {m["workerId"] for m in west[0].json("/admin/v2/worker/cluster")} == {"x1"}
    table = eventually(lambda: west[0].json("/admin/v2/worker/assignments"))
    assert table == {"x1": ["public/default/only-west:0"]}, table
    assert "only-west" not in east[1].json(f"{BASE}")


def test_rebalance_and_drain(fleet: Fleet) -> None:
    # Join rebalancing off: only the operator's call moves running instances here
    # (tests/fleet/test_auto_rebalance.py tests it on).
    workers = [fleet.start("w1", rebalanceOnJoinEnabled=False)]
    eventually(lambda: leader_seen_by_all(workers))
    for index in range(6):
        register(workers[0], f"b{index}")
    eventually(lambda: len(assignments(fleet)) == 6)
    workers.append(fleet.start("w2", rebalanceOnJoinEnabled=False))
    eventually(lambda: leader_seen_by_all(workers))
    assert set(assignments(fleet).values()) == {"w1"}, "a new worker gets no running instances"
    assert call(workers[1].admin_url, "PUT", "/admin/v2/worker/rebalance").status == 200
    balanced = eventually(
        lambda: (
            (t := assignments(fleet))
            and sorted(list(t.values()).count(w) for w in ("w1", "w2")) == [3, 3]
            and t
        )
    )
    assert len(balanced) == 6
    reply = call(workers[0].admin_url, "PUT", "/admin/v2/worker/leader/drain?workerId=w2")
    assert reply.status == 200, reply.body
    eventually(lambda: set(assignments(fleet).values()) == {"w1"}, what="w2 drained")
    status = eventually(
        lambda: (
            (s := workers[1].json("/admin/v2/worker/leader/drain?workerId=w2"))["status"]
            == "SUCCESS"
            and s
        )
    )
    assert status["status"] == "SUCCESS"
    bad = call(workers[0].admin_url, "PUT", "/admin/v2/worker/leader/drain?workerId=nobody")
    assert bad.status == 400 and "nobody" in bad.json()["reason"], bad.body
