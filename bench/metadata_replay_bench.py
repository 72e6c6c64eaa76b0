"""How long a starting worker takes to read the function metadata, with a snapshot
and from the topic's start (issue 15 point 4, part B).

A fleet history of ``--functions`` x ``--updates`` function updates (default 1,000
x 100 = 100,000; every function's instances stopped, so nothing runs) is written
straight to a cluster's metadata topic through the workers' own encoder (batched,
fast), then real ``fnworker worker`` processes (pulsar coordination backend) start
on one embedded pulsar-lite broker, one at a time:

- ``from the start``: a worker starts on a cluster whose snapshot topic is empty and
  replays every record (each trial on a fresh cluster namespace with the same
  history; that worker then writes the first snapshot, as the leader does).
- ``with a snapshot``: on a cluster where a first worker has written its snapshot,
  ``--after`` more updates follow (default 500: half the default interval, the
  average case), then a new worker starts: it loads the snapshot and replays only
  those.

Per start, two times: ``replay s`` = the worker's own ``seconds`` on its
"start-up: metadata read" log line (snapshot search and load plus the replay);
``to line s`` = from spawning the process to that line appearing in its log
(polled every 20 ms: process start, imports and broker probe included). Every
process started here is stopped by its PID; everything binds to loopback.

Run from the repo root: ``.venv/bin/python bench/metadata_replay_bench.py [--quick]
[--functions N] [--updates N] [--after N] [--trials N]``. Writes
``bench/results/metadata-replay.json`` (``metadata-replay-quick.json`` with
``--quick``: 1,000 x 10, 2 trials).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import msgspec  # noqa: E402
import pulsar  # noqa: E402

from bench.common import machine, results_dir  # noqa: E402
from fnworker.coordination.embedded_broker import start_embedded_broker  # noqa: E402
from fnworker.coordination.topics import cluster_topics  # noqa: E402
from fnworker.coordination.wire import FunctionWrite  # noqa: E402
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord  # noqa: E402
from tests.fleet.conftest import Fleet, FleetWorker  # noqa: E402

ENCODE = msgspec.msgpack.Encoder().encode
LINE = "start-up: metadata read"


def log(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def update(index: int, version: int) -> bytes:
    """Version ``version`` of function ``f{index}``, its one instance stopped, encoded."""
    name = f"f{index}"
    config = FunctionConfig(
        tenant="public",
        namespace="default",
        name=name,
        parallelism=1,
        class_name="m.C",
        inputs=["persistent://public/default/in"],
        user_config={"version": version},
    )
    record = FunctionRecord(
        fqfn=Fqfn(f"public/default/{name}"),
        version=version,
        config=config,
        instance_states={0: "STOPPED"},
    )
    write = FunctionWrite(
        fqfn=record.fqfn, version=version, record=record, writer="bench", request_id=""
    )
    return ENCODE(write)


def write_history(client: pulsar.Client, topic: str, functions: int, rounds: range) -> int:
    """Every function updated once per round of ``rounds``, in order; the count."""
    producer = client.create_producer(
        topic, batching_enabled=True, batching_max_messages=1000, block_if_queue_full=True
    )
    count = 0
    for round_ in rounds:
        for index in range(functions):
            producer.send_async(update(index, round_ + 1), None)
            count += 1
    producer.flush()
    producer.close()
    return count


def timed_start(fleet: Fleet, name: str, namespace: str, limit: float) -> dict[str, Any]:
    """Start a worker, wait for its start-up line, stop it; its times and fields."""
    t0 = time.monotonic()
    worker = fleet.start(name, namespace=namespace)
    try:
        line = wait_for_line(worker, t0, limit)
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        return {
            "replay_s": float(fields["seconds"]),
            "to_line_s": time.monotonic() - t0,
            "records_replayed": int(fields["records_replayed"]),
            "functions": int(fields["functions"]),
            "from_snapshot": fields["from_snapshot"] == "True",
        }
    finally:
        stop(fleet, worker)


def wait_for_line(worker: FleetWorker, t0: float, limit: float) -> str:
    """The worker's start-up line, polled every 20 ms."""
    while time.monotonic() - t0 < limit:
        for line in worker.log().splitlines():
            if LINE in line:
                return line
        assert worker.process.poll() is None, worker.log()[-2000:]
        time.sleep(0.02)
    raise TimeoutError(f"{worker.name}: no '{LINE}' within {limit} s")


def wait_for_snapshot(worker: FleetWorker, limit: float) -> None:
    """Until the worker logs that it wrote a snapshot."""
    deadline = time.monotonic() + limit
    while "metadata snapshot written" not in worker.log():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{worker.name} wrote no snapshot within {limit} s")
        time.sleep(0.05)


def stop(fleet: Fleet, worker: FleetWorker) -> None:
    """SIGTERM the worker by its PID and reap it."""
    fleet.workers.pop(worker.name, None)
    if worker.process.poll() is None:
        worker.process.terminate()
    worker.process.wait(timeout=30)


def summary(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [row[key] for row in rows]
    return {"p50": statistics.median(values), "max": max(values), "min": min(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 x 10 updates, 2 trials")
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=None, help="updates per function")
    parser.add_argument("--after", type=int, default=500, help="updates after the snapshot")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--limit", type=float, default=600.0)
    args = parser.parse_args()
    updates = args.updates or (10 if args.quick else 100)
    trials = args.trials or (2 if args.quick else 3)
    results: dict[str, Any] = {"full": [], "snapshot": []}
    with tempfile.TemporaryDirectory(prefix="metadata-bench-") as scratch:
        root = Path(scratch)
        broker = start_embedded_broker(root / "broker")
        fleet = Fleet(broker_url=broker.url, root=root)
        client = pulsar.Client(broker.url, operation_timeout_seconds=30)
        try:
            run(args, fleet, client, updates, trials, results)
        finally:
            fleet.stop_all()
            client.close()
            broker.stop()
    report(args, updates, trials, results)


def run(
    args: argparse.Namespace,
    fleet: Fleet,
    client: pulsar.Client,
    updates: int,
    trials: int,
    results: dict[str, Any],
) -> None:
    """The trials: full replays on fresh clusters, then starts from a snapshot."""
    total = args.functions * updates
    for trial in range(trials):
        namespace = f"public/full-{trial}"
        t0 = time.monotonic()
        write_history(client, cluster_topics(namespace).metadata, args.functions, range(updates))
        log(f"wrote {total} records to {namespace} in {time.monotonic() - t0:.1f} s")
        row = timed_start(fleet, f"full{trial}", namespace, args.limit)
        results["full"].append(row)
        log(f"from the start #{trial + 1}: {row}")
    namespace = "public/snap"
    topic = cluster_topics(namespace).metadata
    write_history(client, topic, args.functions, range(updates))
    first = fleet.start("first", namespace=namespace)
    wait_for_line(first, time.monotonic(), args.limit)
    wait_for_snapshot(first, args.limit)
    stop(fleet, first)
    log("snapshot written by the first worker")
    for trial in range(trials):
        after = range(updates + trial, updates + trial + 1)
        written = 0
        while written < args.after:  # --after more updates, spread over the functions
            count = min(args.functions, args.after - written)
            written += write_history(client, topic, count, after)
            after = range(after.start + 1, after.stop + 1)
        row = timed_start(fleet, f"snap{trial}", namespace, args.limit)
        results["snapshot"].append(row)
        log(f"with a snapshot #{trial + 1}: {row}")


def report(args: argparse.Namespace, updates: int, trials: int, results: dict[str, Any]) -> None:
    """Print the table and write the JSON."""
    total = args.functions * updates
    print(f"\n{total} function updates ({args.functions} functions x {updates}), {trials} trials")
    print(f"{'start':<44}{'replay p50 s':>14}{'max s':>8}{'to line p50 s':>15}{'records':>9}")
    for key, label in (("full", "from the start"), ("snapshot", "with a snapshot")):
        rows = results[key]
        replay, line = summary(rows, "replay_s"), summary(rows, "to_line_s")
        records = rows[-1]["records_replayed"]
        print(
            f"{label:<44}{replay['p50']:>14.3f}{replay['max']:>8.3f}{line['p50']:>15.3f}"
            f"{records:>9}"
        )
    name = "metadata-replay-quick.json" if args.quick else "metadata-replay.json"
    path = results_dir() / name
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "functions": args.functions,
        "updates_per_function": updates,
        "after_snapshot": args.after,
        "trials": trials,
        "results": results,
        "summary": {
            key: {"replay_s": summary(rows, "replay_s"), "to_line_s": summary(rows, "to_line_s")}
            for key, rows in results.items()
        },
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
