"""Process-runtime benchmark (anchors G9/G10 for the process runtime), on loopback
against a pulsar-lite broker this script starts and stops by PID.

Measures, each as the median of ``--runs`` runs:
- instances started per second: N functions started through ``ProcessRuntime``
  until every one reports running (spawn, import, load, subscribe);
- RSS of one idle instance process (VmRSS from /proc, 1 s after start);
- throughput of an identity function in the process runtime, and of the raw
  pulsar-client sync loop (receive -> send_async -> acknowledge, batching producer)
  on the same broker in the same run, and their ratio (goal: >= 0.9).

Run: ``.venv/bin/python bench/process_bench.py [--quick]``; writes
bench/results/process.json (``process-quick.json`` with ``--quick``: 1 run of 4
instances and 5,000 messages, for CI, about 10-15 s here).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import pulsar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import results_dir
from fnworker.coordination.embedded_broker import EmbeddedBroker, start_embedded_broker
from fnworker.runtimes.process.driver import ProcessRuntime
from fnworker.runtimes.process.settings import ProcessSettings
from fnworker.runtimes.thread import ThreadRuntime
from fnworker.scheduler.model.instances import ClientSettings, InstanceSpec
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord, instance_id_of

IDENTITY = "def process(value):\n    return value\n"
PAYLOAD = b"x" * 100


def quiet_logger() -> pulsar.ConsoleLogger:
    """The C++ client's own logger at WARN (the first client's logger is kept process-wide,
    and a Python logger costs every client in the process, see docs/instance-host.md)."""
    return pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn)


def fill(client: pulsar.Client, topic: str, count: int) -> None:
    """Pre-fill ``topic`` with ``count`` 100-byte messages (batched)."""
    producer = client.create_producer(
        topic, batching_enabled=True, batching_max_messages=1000, block_if_queue_full=True
    )
    for _ in range(count):
        producer.send_async(PAYLOAD, None)
    producer.flush()
    producer.close()


def raw_loop(client: pulsar.Client, run: int, count: int) -> float:
    """Messages per second of receive -> send_async -> acknowledge on the sync client."""
    source, sink = f"bench-raw-in-{run}", f"bench-raw-out-{run}"
    shared = pulsar.ConsumerType.Shared
    client.subscribe(source, "raw", consumer_type=shared).close()
    fill(client, source, count)
    consumer = client.subscribe(source, "raw", consumer_type=shared)
    producer = client.create_producer(
        sink,
        batching_enabled=True,
        batching_max_publish_delay_ms=10,
        block_if_queue_full=True,
        max_pending_messages=10_000,
    )
    done = 0
    began = time.perf_counter()
    while done < count:
        message = consumer.receive(5000)
        producer.send_async(message.data(), None)
        consumer.acknowledge(message)
        done += 1
    producer.flush()
    elapsed = time.perf_counter() - began
    producer.close()
    consumer.close()
    return count / elapsed


def make_spec(home: Path, broker: EmbeddedBroker, name: str, **config: Any) -> InstanceSpec:
    """An InstanceSpec of the identity function with its own package copy."""
    fqfn = Fqfn(f"public/default/{name}")
    folder = home / "instances" / name
    folder.mkdir(parents=True, exist_ok=True)
    package = folder / "identity.py"
    package.write_text(IDENTITY)
    record = FunctionRecord(
        fqfn=fqfn,
        version=1,
        config=FunctionConfig(name=name, class_name="identity.process", **config),
    )
    return InstanceSpec(
        instance=instance_id_of(fqfn, 0),
        index=0,
        function=record,
        package_path=package,
        worker_id="bench",
        client=ClientSettings(service_url=broker.url, operation_timeout_seconds=10),
    )


def runtime_for(home: Path, poll_interval: float = 0.5) -> ProcessRuntime:
    """A process runtime with its logs and pid files under ``home``."""
    return ProcessRuntime(
        ProcessSettings(
            log_directory=home / "logs",
            state_directory=home / "state",
            poll_interval_seconds=poll_interval,
        )
    )


async def wait_running(driver: ProcessRuntime, specs: list[InstanceSpec], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all((s := driver.status(spec.instance)) and s.running for spec in specs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not running after {timeout} s: {driver.status(specs[0].instance)}")
        await anyio.sleep(0.01)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def start_many(home: Path, broker: EmbeddedBroker, run: int, count: int) -> dict[str, float]:
    """Start ``count`` functions; rate until all run, median idle RSS, stop rate."""
    driver = runtime_for(home)
    specs = [make_spec(home, broker, f"bench-start-{run}-{i}", inputs=[f"bench-start-in-{run}-{i}"])
             for i in range(count)]  # fmt: skip
    try:
        began = time.perf_counter()
        for spec in specs:
            await driver.start(spec)
        await wait_running(driver, specs, 120)
        started = time.perf_counter() - began
        await anyio.sleep(1.0)
        rss = [rss_kib(driver.pid(spec.instance) or 0) for spec in specs]
        began = time.perf_counter()
    finally:
        await driver.aclose()
    stopped = time.perf_counter() - began
    return {
        "instances_per_second": count / started,
        "idle_rss_mib": statistics.median(rss) / 1024,
        "stops_per_second": count / stopped,
    }


async def process_throughput(
    home: Path, broker: EmbeddedBroker, run: int, count: int, *, forward: bool = True
) -> float:
    """Messages per second of the identity function in its own process (backlog drain).

    ``forward`` is Pulsar's forwardSourceMessageProperty (on by default): every
    result carries the input's properties plus its topic and message id.
    """
    client = pulsar.Client(broker.url, logger=quiet_logger())
    name = f"bench-proc-{run}" if forward else f"bench-proc-nofwd-{run}"
    source = f"{name}-in"
    fill(client, source, count)
    client.close()
    spec = make_spec(
        home,
        broker,
        name,
        inputs=[source],
        output=f"{name}-out",
        subscription_position="Earliest",
        producer_config={"compressionType": "NONE"},
        forward_source_message_property=forward,
    )
    driver = runtime_for(home, poll_interval=0.05)  # finer timing of the drain
    try:
        await driver.start(spec)
        await wait_running(driver, [spec], 60)
        first = (time.perf_counter(), driver.metrics(spec.instance).processed_successfully_total)  # type: ignore[union-attr]
        while (done := driver.metrics(spec.instance).processed_successfully_total) < count:  # type: ignore[union-attr]
            await anyio.sleep(0.02)
        last = time.perf_counter()
    finally:
        await driver.aclose()
    return (done - first[1]) / (last - first[0])


async def thread_throughput(home: Path, broker: EmbeddedBroker, run: int, count: int) -> float:
    """The same drain in the thread runtime, for comparison (same host code, no process)."""
    client = pulsar.Client(broker.url, logger=quiet_logger())
    source = f"bench-thread-in-{run}"
    fill(client, source, count)
    client.close()
    spec = make_spec(
        home,
        broker,
        f"bench-thread-{run}",
        inputs=[source],
        output=f"bench-thread-out-{run}",
        subscription_position="Earliest",
        producer_config={"compressionType": "NONE"},
    )
    driver = ThreadRuntime(client_logger=quiet_logger())
    try:
        began = time.perf_counter()
        await driver.start(spec)
        while driver.metrics(spec.instance).processed_successfully_total < count:  # type: ignore[union-attr]
            await anyio.sleep(0.01)
        elapsed = time.perf_counter() - began
    finally:
        await driver.aclose()
    return count / elapsed


async def main(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="fnw-process-bench-"))
    broker = start_embedded_broker(home / "broker")
    runs: list[dict[str, float]] = []
    try:
        client = pulsar.Client(broker.url, logger=quiet_logger())
        for run in range(args.runs):
            row = await start_many(home / f"start-{run}", broker, run, args.instances)
            row["raw_msgs_per_second"] = await anyio.to_thread.run_sync(
                raw_loop, client, run, args.messages
            )
            row["process_msgs_per_second"] = await process_throughput(
                home / f"proc-{run}", broker, run, args.messages
            )
            row["process_no_forward_msgs_per_second"] = await process_throughput(
                home / f"proc-nofwd-{run}", broker, run, args.messages, forward=False
            )
            row["thread_msgs_per_second"] = await thread_throughput(
                home / f"thread-{run}", broker, run, args.messages
            )
            row["ratio"] = row["process_msgs_per_second"] / row["raw_msgs_per_second"]
            row["thread_ratio"] = row["thread_msgs_per_second"] / row["raw_msgs_per_second"]
            row["no_forward_ratio"] = (
                row["process_no_forward_msgs_per_second"] / row["raw_msgs_per_second"]
            )
            runs.append(row)
            print(f"run {run}: " + ", ".join(f"{k}={v:,.2f}" for k, v in row.items()), flush=True)
        client.close()
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)
    medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    medians["ratio_of_medians"] = (
        medians["process_msgs_per_second"] / medians["raw_msgs_per_second"]
    )
    return {
        "benchmark": "process runtime",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": _cpus(), "python": sys.version.split()[0],
                    "platform": platform.platform()},
        "sizes": {"instances": args.instances, "messages": args.messages, "runs": args.runs,
                  "payload_bytes": len(PAYLOAD), "quick": args.quick},
        "runs": runs,
        "median": medians,
        "goals": {"ratio": 0.9, "instances_per_second": 20, "idle_rss_mib": 40},
    }  # fmt: skip


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run, small sizes (about 15 s)")
    parser.add_argument("--runs", type=int, default=None, help="default 3, quick 1")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.output = args.output or results_dir() / (
        "process-quick.json" if args.quick else "process.json"
    )
    args.instances = 4 if args.quick else 16
    args.messages = 5_000 if args.quick else 100_000
    return args


if __name__ == "__main__":
    arguments = parse_args()
    result = anyio.run(main, arguments)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median"], indent=2))
    print(f"results written to {arguments.output}")
