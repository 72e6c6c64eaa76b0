"""Memory benchmark (issue 7 scenario f): worker RSS with many idle thread-runtime
instances, on a real ``fnworker standalone`` with its embedded broker, on loopback.

Starts the worker (tests/e2e/conftest.py ``launch``), measures its idle RSS, then
registers the example function in batches (``--functions`` x ``--parallelism``,
default 100 x 10 = 1,000 instances; ``--quick``: 5 x 10 = 50) through the REST
API. After each batch it waits until the worker's
``/admin/v2/worker-stats/functionsmetrics`` reports every instance running, waits
``SETTLE_S`` and samples ``VmRSS`` and ``Threads`` from ``/proc/<pid>/status`` of
the worker (and the broker's RSS, a separate process), median of 3 samples. The
instances are idle: nothing is published to their input topics. The worker and
its broker are stopped by PID at the end (tests/e2e/conftest.py ``stop``).

RSS per process-runtime instance is measured by ``bench/process_bench.py``
(``idle_rss_mib``).

    .venv/bin/python bench/memory_bench.py [--quick]

Writes ``bench/results/memory.json`` (``memory-quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import shutil
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

from bench.common import machine, results_dir, rss_kib
from tests.e2e.conftest import StandaloneWorker, launch, stop, wait_ready
from tests.e2e.helpers import BASE, call, example_config, function_form

SETTLE_S = 1.0
SAMPLES = 3


def status_field(pid: int, field: str) -> int:
    """An integer field of /proc/<pid>/status (first number), 0 if missing."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def running(worker: StandaloneWorker) -> int:
    """How many instances the worker's runtime reports running."""
    reply = call(worker.admin_url, "GET", "/admin/v2/worker-stats/functionsmetrics")
    if reply.status != 200:
        return -1
    return sum(1 for held in reply.json() if held.get("running"))


def wait_running(worker: StandaloneWorker, expected: int, timeout: float) -> float:
    """Seconds until ``expected`` instances run; raises after ``timeout``."""
    began = time.monotonic()
    seen = 0
    while time.monotonic() - began < timeout:
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker exited: {worker.log_path.read_text()[-2000:]}")
        seen = running(worker)
        if seen >= expected:
            return time.monotonic() - began
        time.sleep(0.25)
    raise RuntimeError(f"only {seen} of {expected} instances running after {timeout} s")


def sample(worker: StandaloneWorker) -> dict[str, float]:
    """Median worker RSS (MiB), threads and broker RSS over ``SAMPLES`` reads 0.2 s apart."""
    rss, threads, broker = [], [], []
    for _ in range(SAMPLES):
        rss.append(rss_kib(worker.process.pid))
        threads.append(status_field(worker.process.pid, "Threads"))
        broker.append(rss_kib(worker.broker_pid) if worker.broker_pid else 0)
        time.sleep(0.2)
    return {
        "rss_mib": statistics.median(rss) / 1024,
        "threads": statistics.median(threads),
        "broker_rss_mib": statistics.median(broker) / 1024,
    }


def register_batch(worker: StandaloneWorker, names: list[str], parallelism: int) -> None:
    for name in names:
        form = function_form(example_config(name, parallelism=parallelism))
        reply = call(worker.admin_url, "POST", f"{BASE}/{name}", form)
        if reply.status != 200:
            raise RuntimeError(f"register {name}: {reply.status} {reply.body[:300]!r}")


def run(functions: int, parallelism: int, batches: int, timeout: float) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="fnworker-memory-bench-"))
    worker = launch(home / "worker")
    points: list[dict[str, float]] = []
    try:
        began = time.monotonic()
        wait_ready(worker, timeout=60)
        print(
            f"worker pid {worker.process.pid} ready in {time.monotonic() - began:.1f} s", flush=True
        )
        time.sleep(SETTLE_S)
        idle = sample(worker)
        points.append({"instances": 0, "wait_s": 0.0, **idle})
        print(
            f"0 instances: worker RSS {idle['rss_mib']:.1f} MiB, {idle['threads']:.0f} threads",
            flush=True,
        )
        names = [f"mem{i:04d}" for i in range(functions)]
        size = max(1, functions // batches)
        registered = 0
        for start in range(0, functions, size):
            batch = names[start : start + size]
            t = time.monotonic()
            register_batch(worker, batch, parallelism)
            registered += len(batch)
            waited = wait_running(worker, registered * parallelism, timeout)
            elapsed = time.monotonic() - t
            time.sleep(SETTLE_S)
            point = {
                "instances": registered * parallelism,
                "wait_s": round(elapsed, 2),
                **sample(worker),
            }
            points.append(point)
            print(
                f"{point['instances']:>5} instances running ({elapsed:.1f} s for the batch,"
                f" {waited:.1f} s of it waiting): worker RSS {point['rss_mib']:.1f} MiB,"
                f" {point['threads']:.0f} threads, broker RSS {point['broker_rss_mib']:.1f} MiB",
                flush=True,
            )
    finally:
        stop(worker)
        shutil.rmtree(home, ignore_errors=True)
    last = points[-1]
    instances = int(last["instances"])
    return {
        "points": points,
        "result": {
            "instances": instances,
            "rss_mib": round(last["rss_mib"], 1),
            "idle_worker_rss_mib": round(idle["rss_mib"], 1),
            "per_instance_kib": round((last["rss_mib"] - idle["rss_mib"]) * 1024 / instances, 1),
            "threads": last["threads"],
            "broker_rss_mib": round(last["broker_rss_mib"], 1),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 functions x 10 = 50 instances")
    parser.add_argument("--functions", type=int, default=None, help="default 100, quick 5")
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--batches", type=int, default=None, help="default 10, quick 5")
    parser.add_argument("--timeout", type=float, default=300.0, help="per batch, seconds")
    args = parser.parse_args()
    functions = args.functions or (5 if args.quick else 100)
    batches = args.batches or (5 if args.quick else 10)
    started = datetime.now(UTC)
    print(
        f"memory bench: {functions} functions x parallelism {args.parallelism} in {batches}"
        " batches, thread runtime, fnworker standalone",
        flush=True,
    )
    report = {
        "benchmark": "memory (scenario f)",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": {
            "functions": functions,
            "parallelism": args.parallelism,
            "batches": batches,
            "runtime": "thread",
            "quick": args.quick,
            "settle_s": SETTLE_S,
            "samples": SAMPLES,
        },
        **run(functions, args.parallelism, batches, args.timeout),
    }
    out = results_dir() / ("memory-quick.json" if args.quick else "memory.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    r = report["result"]
    print(
        f"\n{r['instances']:,} idle thread-runtime instances: worker RSS {r['rss_mib']} MiB"
        f" (idle worker {r['idle_worker_rss_mib']} MiB, {r['per_instance_kib']} KiB per instance,"
        f" {r['threads']:.0f} threads); broker RSS {r['broker_rss_mib']} MiB"
    )
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
