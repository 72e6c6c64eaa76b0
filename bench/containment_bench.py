"""Containment benchmark (issue 11, "Fault containment"): the throughput of 10
ordinary identity functions alone and beside one heavy function with many input
topics, on a real ``fnworker worker`` (thread runtime, ``pulsarLiteConsumerIdSlots:
16``) and its own pulsar-lite broker, on loopback.

Each round drains a backlog through the 10 ordinary functions once per condition:

- ``alone``: nothing else registered;
- ``heavy-<K>-running``: a function with K input topics (no traffic on them) is
  registered and running (subscribed) before the drain;
- ``heavy-<K>-starting``: that function is registered as the drain starts, so its
  subscribe storm overlaps the drain;

for K = 100 (the default ``maxInputTopicsPerFunction``) and a raised limit
(``--raised``, default 2,000). One round is: stop the ordinary functions (REST
``stop``), pre-fill each input with ``--messages`` 100-byte messages (batching
producer), set up the condition, start them (REST ``start``), and poll the worker's
``/metrics`` every 100 ms until every function has processed its backlog. A
function's rate is its backlog over the time from its first progress to its last
message; the aggregate is all backlogs over first progress to last. The heavy
function is deleted after the round. Conditions are interleaved, their order
reversed every other round; the report gives medians over rounds and each
condition's ratio to ``alone`` (aggregate, and the worst function's median ratio).

    .venv/bin/python bench/containment_bench.py [--quick] [--rounds N] [--messages M]
        [--raised K]

Writes ``bench/results/containment.json`` (``containment-quick.json`` with
``--quick``: 1 round, 2,000 messages per function, K = 100 and 300).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pulsar

from bench.common import machine, results_dir, rss_kib
from fnworker.coordination.embedded_broker import start_embedded_broker
from tests.e2e.helpers import BASE, call
from tests.integration.worker_process import (
    WorkerProcess,
    fill,
    running,
    start_worker,
    stop_worker,
    wait_for,
)

ORDINARY = 10
PAYLOAD = b"x" * 100
IDENTITY = "def process(value):\n    return value\n"
POLL_SECONDS = 0.1
HEAVY = "heavy"


def processed_by_name(worker: WorkerProcess) -> dict[str, float]:
    """``pulsar_function_processed_successfully_total`` per function name."""
    text = call(worker.admin_url, "GET", "/metrics").body.decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("pulsar_function_processed_successfully_total{"):
            name = line.split('name="', 1)[1].split('"', 1)[0]
            counts[name] = counts.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def threads_of(pid: int) -> int:
    """The Threads: line of /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def set_running(worker: WorkerProcess, names: list[str], on: bool) -> None:
    """REST start or stop of every named function; wait until it shows."""
    verb = "start" if on else "stop"
    for name in names:
        reply = call(worker.admin_url, "POST", f"{BASE}/{name}/{verb}")
        assert reply.status in (200, 204), (name, verb, reply.status, reply.body)
    wait_for(lambda: all(running(worker, name) == on for name in names), 60, f"{verb} {len(names)}")


def register_heavy(worker: WorkerProcess, package: Path, topics: int) -> None:
    worker.register(
        HEAVY,
        package,
        className="identity.process",
        inputs=[f"heavy-in-{i}" for i in range(topics)],
    )


def delete_heavy(worker: WorkerProcess) -> None:
    """Delete the heavy function and wait until the runtime no longer holds it."""
    worker.delete(HEAVY)
    wait_for(lambda: HEAVY not in processed_by_name(worker), 60, "heavy gone")


class Progress:
    """Messages processed per function since ``begin()``, across instance restarts (a
    restarted instance counts from 0 again: its earlier count is carried over)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.last: dict[str, float] = {}
        self.carried: dict[str, float] = dict.fromkeys(names, 0.0)
        self.restarts = 0

    def read(self, worker: WorkerProcess) -> dict[str, float]:
        counts = processed_by_name(worker)
        for name in self.names:
            now = counts.get(name, 0.0)
            if now < self.last.get(name, 0.0):
                self.carried[name] += self.last[name]
                self.restarts += 1
            self.last[name] = now
        return {name: self.last[name] + self.carried[name] for name in self.names}


def drain(worker: WorkerProcess, names: list[str], messages: int) -> dict[str, Any]:
    """Start the stopped functions and time their backlog drain from /metrics."""
    progress = Progress(names)
    base = progress.read(worker)
    first: dict[str, float] = {}
    done: dict[str, float] = {}
    answers = [call(worker.admin_url, "POST", f"{BASE}/{name}/start").status for name in names]
    assert all(status in (200, 204) for status in answers), answers
    deadline = time.monotonic() + 300
    while len(done) < len(names):
        assert time.monotonic() < deadline, f"drain did not finish: {done}"
        now = time.monotonic()
        counts = progress.read(worker)
        for name in names:
            got = counts[name] - base[name]
            if got > 0 and name not in first:
                first[name] = now
            if got >= messages and name not in done:
                done[name] = now
        time.sleep(POLL_SECONDS)
    per_function = {name: messages / max(done[name] - first[name], POLL_SECONDS) for name in names}
    span = max(done.values()) - min(first.values())
    return {
        "aggregate_msgs_per_second": len(names) * messages / max(span, POLL_SECONDS),
        "per_function_msgs_per_second": per_function,
        "instance_restarts_seen": progress.restarts,
    }


def one_round(
    worker: WorkerProcess,
    client: pulsar.Client,
    package: Path,
    names: list[str],
    condition: str,
    messages: int,
) -> dict[str, Any]:
    """Drain ``messages`` per function under ``condition``."""
    set_running(worker, names, False)
    for name in names:
        fill(client, f"{name}-in", (PAYLOAD for _ in range(messages)))
    topics = int(condition.split("-")[1]) if condition != "alone" else 0
    if condition.endswith("-running"):
        register_heavy(worker, package, topics)
        wait_for(lambda: running(worker, HEAVY), 180, "heavy running")
    elif condition.endswith("-starting"):
        register_heavy(worker, package, topics)
    threads = threads_of(worker.process.pid)
    fences = worker.log().count("worker was frozen")
    result = drain(worker, names, messages)
    result["self_fences"] = worker.log().count("worker was frozen") - fences
    result["worker_threads"] = threads
    result["worker_rss_kib"] = rss_kib(worker.process.pid)
    if topics:
        result["heavy_running_at_end"] = running(worker, HEAVY)
        delete_heavy(worker)
    return result


def summarize(rounds: list[dict[str, dict[str, Any]]], conditions: list[str]) -> dict[str, Any]:
    """Medians per condition and ratios to ``alone``."""
    alone = [r["alone"] for r in rounds]
    summary: dict[str, Any] = {}
    for condition in conditions:
        rows = [r[condition] for r in rounds]
        aggregate = statistics.median(row["aggregate_msgs_per_second"] for row in rows)
        ratios = [
            row["aggregate_msgs_per_second"] / base["aggregate_msgs_per_second"]
            for row, base in zip(rows, alone, strict=True)
        ]
        names = sorted(rows[0]["per_function_msgs_per_second"])
        worst = min(
            statistics.median(
                row["per_function_msgs_per_second"][name]
                / base["per_function_msgs_per_second"][name]
                for row, base in zip(rows, alone, strict=True)
            )
            for name in names
        )
        summary[condition] = {
            "aggregate_msgs_per_second_median": round(aggregate),
            "aggregate_ratio_to_alone_median": round(statistics.median(ratios), 3),
            "aggregate_ratios": [round(x, 3) for x in ratios],
            "worst_function_ratio_median": round(worst, 3),
        }
    return summary


def run(rounds: int, messages: int, heavy_sizes: list[int]) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="fnw-containment-bench-"))
    package = home / "identity.py"
    package.write_text(IDENTITY)
    conditions = ["alone"] + [
        f"heavy-{k}-{phase}" for k in heavy_sizes for phase in ("running", "starting")
    ]
    quiet = logging.getLogger("containment-bench")
    quiet.setLevel(logging.WARNING)
    broker = start_embedded_broker(home / "broker")
    worker: WorkerProcess | None = None
    try:
        worker = start_worker(
            home / "worker", broker.url, maxInputTopicsPerFunction=max(heavy_sizes)
        )
        client = pulsar.Client(broker.url, operation_timeout_seconds=30, logger=quiet)
        names = [f"ordinary{i}" for i in range(ORDINARY)]
        for name in names:
            worker.register(
                name, package, className="identity.process", inputs=[f"{name}-in"],
                output=f"{name}-out", producerConfig={"compressionType": "NONE"},
            )  # fmt: skip
        wait_for(lambda: all(running(worker, n) for n in names), 60, "ordinary functions run")
        results: list[dict[str, dict[str, Any]]] = []
        for number in range(rounds):
            order = conditions if number % 2 == 0 else conditions[::-1]
            row: dict[str, dict[str, Any]] = {}
            for condition in order:
                row[condition] = one_round(worker, client, package, names, condition, messages)
                print(
                    f"round {number + 1}/{rounds} {condition:<20} "
                    f"{row[condition]['aggregate_msgs_per_second']:>9,.0f} msg/s aggregate",
                    flush=True,
                )
            results.append(row)
        client.close()
        return {"rounds": results, "summary": summarize(results, conditions)}
    finally:
        if worker is not None:
            stop_worker(worker)
        broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 2,000 msgs, K=100,300")
    parser.add_argument("--rounds", type=int, default=None, help="default 3, quick 1")
    parser.add_argument("--messages", type=int, default=None, help="per function; 20,000")
    parser.add_argument("--raised", type=int, default=None, help="raised-limit K; 2,000")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    messages = args.messages or (2_000 if args.quick else 20_000)
    heavy_sizes = [100, args.raised or (300 if args.quick else 2_000)]
    print(
        f"containment bench: {ORDINARY} identity functions x {messages:,} messages, "
        f"heavy function K={heavy_sizes}, {rounds} round(s)",
        flush=True,
    )
    began = time.monotonic()
    report = {
        "bench": "containment",
        "run_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": {
            "ordinary_functions": ORDINARY,
            "messages_per_function": messages,
            "heavy_topics": heavy_sizes,
            "rounds": rounds,
            "quick": args.quick,
            "runtime": "thread",
        },
        **run(rounds, messages, heavy_sizes),
        "seconds": round(time.monotonic() - began, 1),
    }
    for condition, row in report["summary"].items():
        print(
            f"{condition:<20} aggregate {row['aggregate_msgs_per_second_median']:>9,} msg/s  "
            f"ratio {row['aggregate_ratio_to_alone_median']:.3f}  "
            f"worst function ratio {row['worst_function_ratio_median']:.3f}",
            flush=True,
        )
    out = results_dir() / ("containment-quick.json" if args.quick else "containment.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
