"""Function state benchmark (issue 13, "Benchmark"): ``context.incr_counter`` and
``context.put_state`` calls per second against the same runtime's plain message
throughput, and the read-your-write latency of the broker-backed state store, on
a pulsar-lite broker this script starts and stops by PID, on loopback.

Every condition drains a backlog of ``--messages`` 100-byte messages (batching
producer, batches of 100) through a new function on the thread runtime
(``subscriptionPosition: Earliest``), each function in child processes of this
script (``--child``: one ``ThreadRuntime`` per process, pulsar-lite consumer ids
spread as a worker with ``pulsarLiteConsumerIdSlots: 16`` does). The identity
function drains 10x as many messages, pre-filled before it starts (as
process_bench.py measures it; its drain must span many polls, and a concurrent
fill would bound it); a state function's backlog is sent once all its instances
run, so every instance shares it (sending is ~30x faster than the drain):

- ``identity-1`` / ``incr-1`` / ``put-1``: one instance in one process; the
  identity function returns its input to an output topic, ``incr`` calls
  ``context.incr_counter("bench", 1)`` once per message, ``put`` calls
  ``context.put_state("bench", item)`` once per message (no output);
- ``identity-3on2`` / ``incr-3on2`` / ``put-3on2``: the same function with
  parallelism 3, instances 0 and 1 in one process and instance 2 in another
  (two "workers"), on one Shared subscription.

A drain's rate is the messages processed between the first progress seen and
the last message, over that time (the children's counters, polled every 20 ms);
a state function makes one state call per message, so its rate is its calls per
second. Conditions are interleaved within a round, their order reversed every
other round; the report gives medians over rounds and each state condition's
ratio to the identity function with the same instances (the ratio of the round's
own rates, then the median). A drain that does not finish in 120 s is recorded
as unfinished with what it processed. After an ``incr`` drain this process reads
the counter through a state log of its own (``counter``: every increment landed
once; above ``processed`` would be a double count).

Read-your-write latency, once per round: a writer process calls
``incr_counter`` on its own ``FunctionStateLog`` every ``--gap-ms`` (default 5);
after each call returns it reads ``get_counter`` at once (``same_process``:
the time until that read returns the new value) and records when the call
returned; this process, with a state log of its own (another process's view, as a
second worker has), polls ``get_counter`` every 0.1 ms and records when each
value was first seen (``other_process``; CLOCK_MONOTONIC is system-wide, so the
two processes' times compare). p50 and p99 over ``--samples`` writes.

    .venv/bin/python bench/state_bench.py [--quick] [--rounds N] [--messages M]
        [--samples K]

Writes ``bench/results/state.json`` (``state-quick.json`` with ``--quick``: 1
round, 2,000 messages, 200 latency samples, about a minute here).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import anyio
import msgspec
import pulsar

from bench.common import machine, results_dir
from fnworker.coordination.embedded_broker import EmbeddedBroker, start_embedded_broker
from fnworker.runtimes.instance.consumer_ids import ConsumerIdSpreader, slot_of
from fnworker.runtimes.instance.state_log import FunctionStateLog
from fnworker.runtimes.thread import ThreadRuntime
from fnworker.scheduler.model.function_state import state_topic
from fnworker.scheduler.model.instances import ClientSettings, InstanceSpec, StateSettings
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord, instance_id_of

PAYLOAD = b"x" * 100
NAMESPACE = "public/functions"
CONSUMER_ID_SLOTS = 16
DRAIN_TIMEOUT = 120.0
POLL_SECONDS = 0.02
IDENTITY_FACTOR = 10
"""The identity function drains this many times the backlog: it is ~30x faster, and
its drain must span many 20 ms polls to be timed."""
FUNCTIONS = """
from pulsar import Function


class Identity(Function):
    def process(self, item, context):
        return item


class Incr(Function):
    def process(self, item, context):
        context.incr_counter("bench", 1)


class Put(Function):
    def process(self, item, context):
        context.put_state("bench", item)
"""
KINDS = {"identity": "Identity", "incr": "Incr", "put": "Put"}
LAYOUTS = {"1": [[0]], "3on2": [[0, 1], [2]]}
"""Which instance indexes each child process runs."""


def encode(value: msgspec.Struct) -> bytes:
    """JSON of an order (paths as strings)."""
    return msgspec.json.encode(value, enc_hook=str)


def decode(data: bytes, kind: type[Any]) -> Any:
    """An order from its JSON (strings back to paths)."""
    return msgspec.json.decode(data, type=kind, dec_hook=lambda _kind, value: Path(value))


def quiet_logger() -> pulsar.ConsoleLogger:
    """The C++ client's own logger at WARN."""
    return pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn)


def worker_ids() -> list[str]:
    """Two worker ids in different consumer-id slots (so their consumers never clash)."""
    first = "state-bench-a"
    for suffix in range(1000):
        other = f"state-bench-b{suffix}"
        if slot_of(other, CONSUMER_ID_SLOTS) != slot_of(first, CONSUMER_ID_SLOTS):
            return [first, other]
    raise RuntimeError("no second consumer-id slot found")


# -- the child: a ThreadRuntime running some instances, counters in a file ---------------


class ChildOrder(msgspec.Struct, frozen=True, kw_only=True):
    """What a child process runs and where it reports."""

    worker_id: str
    specs: list[InstanceSpec]
    counts_file: Path


async def child_main(order: ChildOrder) -> None:
    """Run ``order``'s instances until SIGTERM, writing processed counts every 20 ms."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    runtime = ThreadRuntime(
        client_logger=quiet_logger(),
        consumer_ids=ConsumerIdSpreader(order.worker_id, CONSUMER_ID_SLOTS),
    )
    try:
        for spec in order.specs:
            await runtime.start(spec)
        while not stopping.is_set():
            statuses = [runtime.status(spec.instance) for spec in order.specs]
            metrics = [runtime.metrics(spec.instance) for spec in order.specs]
            report = {
                "running": all(s is not None and s.running for s in statuses),
                "processed": sum(m.processed_successfully_total for m in metrics if m),
                "errors": sum(
                    m.system_exceptions_total + m.user_exceptions_total for m in metrics if m
                ),
                "status": [s.error for s in statuses if s is not None and s.error],
            }
            staging = order.counts_file.with_suffix(".tmp")
            staging.write_text(json.dumps(report))
            staging.replace(order.counts_file)
            await anyio.sleep(POLL_SECONDS)
    finally:
        await runtime.aclose()


class Child:
    """A child process of this script, stopped by its PID."""

    def __init__(self, order: ChildOrder, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        order_file = folder / "order.json"
        order_file.write_bytes(encode(order))
        self.counts_file = order.counts_file
        self.log_path = folder / "child.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--child", str(order_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def counts(self) -> dict[str, Any]:
        """The child's latest report (empty before its first)."""
        try:
            return dict(json.loads(self.counts_file.read_text()))
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s; reaped."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# -- one drain -------------------------------------------------------------------------------


def fill(client: pulsar.Client, topic: str, count: int) -> None:
    """Pre-fill ``topic`` in batches of 100 (entries a Shared subscription deals out)."""
    producer = client.create_producer(
        topic, batching_enabled=True, batching_max_messages=100, block_if_queue_full=True
    )
    for _ in range(count):
        producer.send_async(PAYLOAD, None)
    producer.flush()
    producer.close()


def record_of(name: str, kind: str, parallelism: int) -> FunctionRecord:
    """The function of one drain: a new name, so new input topic and subscription."""
    fqfn = Fqfn(f"public/default/{name}")
    config = FunctionConfig(
        name=name,
        class_name=f"state_fns.{KINDS[kind]}",
        inputs=[f"persistent://public/default/{name}-in"],
        output=f"persistent://public/default/{name}-out" if kind == "identity" else None,
        parallelism=parallelism,
        subscription_position="Earliest",
    )
    return FunctionRecord(
        fqfn=fqfn, version=1, config=config, create_time_ms=int(time.time() * 1000)
    )


def drain(
    broker: EmbeddedBroker,
    client: pulsar.Client,
    home: Path,
    tag: str,
    condition: str,
    messages: int,
) -> dict[str, Any]:
    """Drain ``messages`` through the condition's function; its rate and counts."""
    kind, layout = condition.split("-")
    groups = LAYOUTS[layout]
    name = f"bench-{tag}-{kind}-{layout}"
    record = record_of(name, kind, sum(len(group) for group in groups))
    prefill = kind == "identity"
    if prefill:
        messages *= IDENTITY_FACTOR
        fill(client, record.config.inputs[0], messages)
    package = home / "state_fns.py"
    children = []
    try:
        for number, (group, worker) in enumerate(zip(groups, worker_ids(), strict=False)):
            specs = [spec_of(record, index, package, broker, worker) for index in group]
            folder = home / name / f"child-{number}"
            order = ChildOrder(worker_id=worker, specs=specs, counts_file=folder / "counts.json")
            children.append(Child(order, folder))
        if not prefill:
            wait_running(children)
            fill(client, record.config.inputs[0], messages)
        result = timed_drain(children, messages)
        if kind == "incr":
            result["counter"] = counter_total(client, record, result["processed"])
        return result
    finally:
        for child in children:
            child.stop()


def counter_total(client: pulsar.Client, record: FunctionRecord, processed: int) -> int:
    """The ``bench`` counter as another process's state log sees it (once it reached
    ``processed``, or after 10 s): the increments that landed, redeliveries included."""
    topic = state_topic(NAMESPACE, record.fqfn)
    state = FunctionStateLog(
        lambda: client,
        topic,
        incarnation=record.create_time_ms,
        settings=StateSettings(namespace=NAMESPACE),
    )
    try:
        deadline = time.monotonic() + 10
        while state.get_counter("bench") < processed and time.monotonic() < deadline:
            time.sleep(0.05)
        return state.get_counter("bench")
    finally:
        state.close()


def spec_of(
    record: FunctionRecord, index: int, package: Path, broker: EmbeddedBroker, worker: str
) -> InstanceSpec:
    """Instance ``index`` of ``record`` on ``worker``."""
    return InstanceSpec(
        instance=instance_id_of(record.fqfn, index),
        index=index,
        function=record,
        package_path=package,
        worker_id=worker,
        client=ClientSettings(service_url=broker.url, operation_timeout_seconds=10),
        state=StateSettings(namespace=NAMESPACE),
    )


def wait_running(children: list[Child], timeout: float = 60.0) -> None:
    """Until every child reports all its instances running (then they all share the
    backlog); RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not all(child.counts().get("running") for child in children):
        if time.monotonic() > deadline:
            raise RuntimeError(f"instances not running after {timeout} s: "
                               f"{[child.counts() for child in children]}")  # fmt: skip
        time.sleep(POLL_SECONDS)


def timed_drain(children: list[Child], messages: int) -> dict[str, Any]:
    """Poll the children's counts until all ``messages`` are processed (bounded)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    first: tuple[float, int] | None = None
    processed = 0
    while time.monotonic() < deadline:
        reports = [child.counts() for child in children]
        processed = sum(int(report.get("processed", 0)) for report in reports)
        now = time.perf_counter()
        if first is None and processed > 0:
            first = (now, processed)
        if processed >= messages:
            break
        time.sleep(POLL_SECONDS)
    finished = processed >= messages
    rate = 0.0
    if first is not None and processed > first[1]:
        rate = (processed - first[1]) / (time.perf_counter() - first[0])
    reports = [child.counts() for child in children]
    return {
        "msgs_per_second": round(rate, 1),
        "processed": processed,
        "finished": finished,
        "processed_per_process": [int(report.get("processed", 0)) for report in reports],
        "errors": sum(int(report.get("errors", 0)) for report in reports),
        "status": [error for report in reports for error in report.get("status", [])][:3],
    }


# -- read-your-write latency ---------------------------------------------------------------


class WriterOrder(msgspec.Struct, frozen=True, kw_only=True):
    """What the latency writer does."""

    broker_url: str
    topic: str
    incarnation: int
    samples: int
    gap_ms: float
    go_file: Path
    out_file: Path


def open_log(client: pulsar.Client, topic: str, incarnation: int) -> FunctionStateLog:
    """A state log on ``topic``, opened (replayed) now."""
    state = FunctionStateLog(
        lambda: client, topic, incarnation=incarnation, settings=StateSettings(namespace=NAMESPACE)
    )
    state.get_counter("rw")
    return state


def writer_main(order: WriterOrder) -> None:
    """Increment ``rw`` ``samples`` times; after each, time the same-process read."""
    client = pulsar.Client(order.broker_url, operation_timeout_seconds=10, logger=quiet_logger())
    state = open_log(client, order.topic, order.incarnation)
    deadline = time.monotonic() + 30
    while not order.go_file.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    returned: list[float] = []
    own_read: list[float] = []
    try:
        for expected in range(1, order.samples + 1):
            value = state.incr_counter("rw", 1)
            done = time.monotonic()
            seen = state.get_counter("rw")
            own_read.append(time.monotonic() - done)
            if value != expected or seen < expected:
                raise RuntimeError(f"own write not visible: {value=} {seen=} {expected=}")
            returned.append(done)
            time.sleep(order.gap_ms / 1000)
    finally:
        state.close()
        client.close()
    order.out_file.write_text(json.dumps({"returned": returned, "own_read": own_read}))


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(0.5), "p99_ms": at(0.99)}


def read_your_write(
    broker: EmbeddedBroker, client: pulsar.Client, home: Path, tag: str, samples: int, gap: float
) -> dict[str, Any]:
    """The writer's own read and this process's view of its writes: p50/p99."""
    folder = home / f"latency-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    order = WriterOrder(
        broker_url=broker.url,
        topic=state_topic(NAMESPACE, f"public/default/bench-rw-{tag}"),
        incarnation=1,
        samples=samples,
        gap_ms=gap,
        go_file=folder / "go",
        out_file=folder / "out.json",
    )
    (folder / "order.json").write_bytes(encode(order))
    observer = open_log(client, order.topic, order.incarnation)
    seen_at: dict[int, float] = {}
    with (folder / "writer.log").open("ab") as log:
        writer = subprocess.Popen(
            [sys.executable, __file__, "--writer", str(folder / "order.json")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        order.go_file.touch()
        deadline = time.monotonic() + 30 + samples * (gap / 1000 + 0.05)
        last = 0
        while last < samples and time.monotonic() < deadline:
            value = observer.get_counter("rw")
            if value > last:
                now = time.monotonic()
                for number in range(last + 1, value + 1):
                    seen_at[number] = now
                last = value
            time.sleep(0.0001)
        writer.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=10)
        observer.close()
    written = json.loads(order.out_file.read_text())
    other = [seen_at[i + 1] - t for i, t in enumerate(written["returned"]) if i + 1 in seen_at]
    return {
        "samples": samples,
        "seen_by_other_process": len(other),
        "other_process": percentiles([max(0.0, x) for x in other]),
        "same_process": percentiles(written["own_read"]),
    }


# -- rounds and the report -------------------------------------------------------------------

CONDITIONS = ["identity-1", "incr-1", "put-1", "identity-3on2", "incr-3on2", "put-3on2"]


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds, and each state condition's ratio to its identity baseline."""
    summary: dict[str, Any] = {}
    for condition in CONDITIONS:
        rates = [r[condition]["msgs_per_second"] for r in rounds]
        row: dict[str, Any] = {"msgs_per_second_median": statistics.median(rates), "rounds": rates}
        kind, layout = condition.split("-")
        if kind != "identity":
            ratios = [
                r[condition]["msgs_per_second"] / r[f"identity-{layout}"]["msgs_per_second"]
                for r in rounds
                if r[f"identity-{layout}"]["msgs_per_second"] > 0
            ]
            row["ratio_to_identity_median"] = (
                round(statistics.median(ratios), 3) if ratios else None
            )
            row["ratio_to_identity_rounds"] = [round(x, 3) for x in ratios]
        row["all_finished"] = all(r[condition]["finished"] for r in rounds)
        summary[condition] = row
    for view in ("other_process", "same_process"):
        for key in ("p50_ms", "p99_ms"):
            values = [r["read_your_write"][view][key] for r in rounds]
            summary.setdefault(f"read_your_write_{view}", {})[f"{key}_median"] = statistics.median(
                values
            )
    return summary


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the broker, run the rounds, stop everything; the results."""
    home = Path(tempfile.mkdtemp(prefix="fnw-state-bench-"))
    (home / "state_fns.py").write_text(FUNCTIONS)
    broker = start_embedded_broker(home / "broker")
    rounds: list[dict[str, Any]] = []
    try:
        client = pulsar.Client(broker.url, operation_timeout_seconds=10, logger=quiet_logger())
        try:
            for number in range(args.rounds):
                order = CONDITIONS if number % 2 == 0 else CONDITIONS[::-1]
                row: dict[str, Any] = {}
                for condition in order:
                    row[condition] = drain(
                        broker, client, home, f"r{number}", condition, args.messages
                    )
                    print(
                        f"round {number + 1}/{args.rounds} {condition:<14} {row[condition]}",
                        flush=True,
                    )
                row["read_your_write"] = read_your_write(
                    broker, client, home, f"r{number}", args.samples, args.gap_ms
                )
                print(
                    f"round {number + 1}/{args.rounds} read-your-write {row['read_your_write']}",
                    flush=True,
                )
                rounds.append(row)
        finally:
            client.close()
    finally:
        broker.stop()
    return {"rounds": rounds, "summary": summarize(rounds)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round, 2,000 msgs, 200 samples")
    parser.add_argument("--rounds", type=int, default=None, help="default 3, quick 1")
    parser.add_argument("--messages", type=int, default=None, help="default 20,000, quick 2,000")
    parser.add_argument("--samples", type=int, default=None, help="default 2,000, quick 200")
    parser.add_argument("--gap-ms", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--writer", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.messages = args.messages or (2_000 if args.quick else 20_000)
    args.samples = args.samples or (200 if args.quick else 2_000)
    args.output = args.output or results_dir() / (
        "state-quick.json" if args.quick else "state.json"
    )
    return args


def main() -> int:
    args = parse_args()
    if args.child is not None:
        anyio.run(child_main, decode(args.child.read_bytes(), ChildOrder))
        return 0
    if args.writer is not None:
        writer_main(decode(args.writer.read_bytes(), WriterOrder))
        return 0
    began = time.monotonic()
    print(
        f"state bench: {args.rounds} round(s), {args.messages:,} messages per drain, "
        f"{args.samples:,} latency samples",
        flush=True,
    )
    result = {
        "benchmark": "state store",
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "sizes": {
            "rounds": args.rounds,
            "messages": args.messages,
            "samples": args.samples,
            "gap_ms": args.gap_ms,
            "payload_bytes": len(PAYLOAD),
            "quick": args.quick,
        },
        **run(args),
    }
    result["seconds"] = round(time.monotonic() - began, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    raise SystemExit(main())
