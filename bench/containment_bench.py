"""Containment benchmark (issue 11, "Fault containment"): the throughput of 10
ordinary identity functions alone and beside one heavy function with many input
topics, on a real ``fnworker worker`` (thread runtime, ``pulsarLiteConsumerIdSlots:
16``) and its own pulsar-lite broker, on loopback.

Each round drains a backlog through 10 ordinary functions once per condition:

- ``alone``: nothing else registered;
- ``heavy-<K>-running``: a function with K input topics (no traffic on them) is
  registered and running (subscribed) before the drain;
- ``heavy-<K>-starting``: that function is registered as the drain starts, so its
  subscribe storm overlaps the drain;

for K = 100 (the default ``maxInputTopicsPerFunction``) and a raised limit
(``--raised``, default 2,000). One drain: pre-fill ``--messages`` 100-byte messages
(batching producer) on 10 new input topics, set up the condition, register 10 new
identity functions on them (``subscriptionPosition: Earliest``), and poll the
worker's ``/metrics`` every 100 ms until every function has processed its backlog
(or 120 s pass: the drain is then recorded as unfinished, with what it processed).
The functions are new for every drain, never stopped and started again: on
pulsar-lite a restarted consumer can leave a Shared subscription stalled for good
(docs/instance-host.md), which an earlier version of this bench measured instead.
A function's rate is its backlog over the time from its first progress to its last
message; the aggregate is all backlogs over first progress to last. The heavy
function and the 10 are deleted after the drain. Conditions are interleaved, their
order reversed every other round; the report gives medians over rounds and each
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
from tests.e2e.helpers import call
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


def register_ordinary(worker: WorkerProcess, package: Path, name: str) -> None:
    """An identity function on ``{name}-in`` that starts from the earliest message."""
    worker.register(
        name, package, className="identity.process", inputs=[f"{name}-in"],
        output=f"{name}-out", producerConfig={"compressionType": "NONE"},
        subscriptionPosition="Earliest",
    )  # fmt: skip


def delete_all(worker: WorkerProcess, names: list[str]) -> None:
    """Delete the functions and wait until the runtime holds none of them."""
    for name in names:
        worker.delete(name)
    wait_for(lambda: not set(names) & set(processed_by_name(worker)), 60, "drained ones gone")


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


DRAIN_DEADLINE_SECONDS = 120
"""A drain takes seconds; one still unfinished after this is recorded as such (its
function stalled) with what it processed, and the run goes on."""


def drain(worker: WorkerProcess, package: Path, names: list[str], messages: int) -> dict[str, Any]:
    """Register the functions (each on its pre-filled input, from the earliest message)
    and time their backlog drain from /metrics."""
    progress = Progress(names)
    base = dict.fromkeys(names, 0.0)
    first: dict[str, float] = {}
    done: dict[str, float] = {}
    for name in names:
        register_ordinary(worker, package, name)
    began = time.monotonic()
    deadline = began + DRAIN_DEADLINE_SECONDS
    got: dict[str, float] = dict.fromkeys(names, 0.0)
    while len(done) < len(names) and time.monotonic() < deadline:
        now = time.monotonic()
        counts = progress.read(worker)
        for name in names:
            got[name] = counts[name] - base[name]
            if got[name] > 0 and name not in first:
                first[name] = now
            if got[name] >= messages and name not in done:
                done[name] = now
        time.sleep(POLL_SECONDS)
    end = time.monotonic()
    unfinished = sorted(set(names) - set(done))
    if unfinished:
        print(f"  drain did not finish in {DRAIN_DEADLINE_SECONDS} s: {unfinished}", flush=True)
    per_function = {
        name: min(got[name], messages)
        / max(done.get(name, end) - first.get(name, began), POLL_SECONDS)
        for name in names
    }
    span = max(done.get(name, end) for name in names) - min(first.values(), default=began)
    return {
        "aggregate_msgs_per_second": sum(min(got[n], messages) for n in names)
        / max(span, POLL_SECONDS),
        "per_function_msgs_per_second": per_function,
        "instance_restarts_seen": progress.restarts,
        "unfinished": unfinished,
    }


def one_round(
    worker: WorkerProcess,
    client: pulsar.Client,
    package: Path,
    tag: str,
    condition: str,
    messages: int,
) -> dict[str, Any]:
    """Drain ``messages`` per function under ``condition`` through ORDINARY new
    functions (``ordinary{i}-{tag}``): a function is never stopped and started again
    between drains, which on pulsar-lite can leave its Shared subscription stalled
    for good (docs/instance-host.md) and would measure that instead."""
    names = [f"ordinary{i}-{tag}" for i in range(ORDINARY)]
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
    result = drain(worker, package, names, messages)
    result["self_fences"] = worker.log().count("worker was frozen") - fences
    result["worker_threads"] = threads
    result["worker_rss_kib"] = rss_kib(worker.process.pid)
    if topics:
        result["heavy_running_at_end"] = running(worker, HEAVY)
        delete_heavy(worker)
    delete_all(worker, names)
    result["per_function_msgs_per_second"] = {
        name.rsplit("-", 1)[0]: rate
        for name, rate in result["per_function_msgs_per_second"].items()
    }
    result["unfinished"] = [name.rsplit("-", 1)[0] for name in result["unfinished"]]
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
        results: list[dict[str, dict[str, Any]]] = []
        for number in range(rounds):
            order = conditions if number % 2 == 0 else conditions[::-1]
            row: dict[str, dict[str, Any]] = {}
            for condition in order:
                tag = f"r{number}{conditions.index(condition)}"
                row[condition] = one_round(worker, client, package, tag, condition, messages)
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
