"""REST API benchmark (issue 7 scenario g): register / get / status requests per
second against a real ``fnworker standalone`` (embedded broker, thread runtime) on
loopback, with a bounded concurrent aiohttp client.

Phases, in order, each with at most ``--concurrency`` requests in flight (default
8) on one keep-alive ``aiohttp`` session:

- ``register``: ``POST /admin/v3/functions/public/default/<name>`` with the
  example function (multipart, as pulsar-admin sends it), parallelism 1; each
  one also starts an instance in the worker;
- ``get``: ``GET .../<name>`` round-robin over the registered functions;
- ``status``: ``GET .../<name>/status`` likewise (asks the runtime for every
  instance's state).

Reports requests/s (requests / wall time of the phase), p50 / p99 / max latency
and the count of non-200 answers. A few untimed GETs warm the connection pool
first. Client and worker share the machine's cores, so the numbers are a lower
bound of the server alone. The worker and its broker are stopped by PID at the
end (tests/e2e/conftest.py ``stop``).

    .venv/bin/python bench/rest_bench.py [--quick] [--concurrency N]

Sizes: 200 registrations, 2,000 gets, 2,000 status requests (``--quick``: 20,
200, 200). Writes ``bench/results/rest.json`` (``rest-quick.json`` with
``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import machine, results_dir
from tests.e2e.conftest import launch, stop, wait_ready
from tests.e2e.helpers import BASE, call, example_config, function_form


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of ``values`` (share in 0..1)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def phase(
    session: aiohttp.ClientSession,
    base: str,
    operation: str,
    count: int,
    concurrency: int,
    request: Callable[[int], tuple[str, str, aiohttp.FormData | None]],
) -> dict[str, Any]:
    """``count`` requests, at most ``concurrency`` in flight; rate, latencies, errors."""
    latencies: list[float] = []
    errors: dict[int, int] = {}
    next_index = 0
    done = 0
    report_every = max(1, count // 5)

    async def one_client() -> None:
        nonlocal next_index, done
        while next_index < count:
            index = next_index
            next_index += 1
            method, path, form = request(index)
            began = time.perf_counter()
            async with session.request(method, base + path, data=form) as reply:
                await reply.read()
                status = reply.status
            latencies.append(time.perf_counter() - began)
            if status != 200:
                errors[status] = errors.get(status, 0) + 1
            done += 1
            if done % report_every == 0:
                print(f"  {operation}: {done}/{count}", flush=True)

    began = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    wall = time.perf_counter() - began
    row = {
        "operation": operation,
        "requests": count,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "requests_per_second": round(count / wall, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "errors": errors,
    }
    print(
        f"{operation:<9} {count:>6} requests in {wall:6.2f} s: {row['requests_per_second']:8.1f}/s,"
        f" p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, errors {errors or 0}",
        flush=True,
    )
    return row


async def run_phases(
    base: str, functions: int, gets: int, statuses: int, concurrency: int
) -> list[dict[str, Any]]:
    names = [f"rest{i:05d}" for i in range(functions)]
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        rows = [
            await phase(
                session,
                base,
                "register",
                functions,
                concurrency,
                lambda i: ("POST", f"{BASE}/{names[i]}", function_form(example_config(names[i]))),
            ),
        ]
        # warm-up, untimed: opens the pool's connections
        await phase(
            session,
            base,
            "warm-up",
            concurrency * 4,
            concurrency,
            lambda i: ("GET", f"{BASE}/{names[i % functions]}", None),
        )
        rows.append(
            await phase(
                session,
                base,
                "get",
                gets,
                concurrency,
                lambda i: ("GET", f"{BASE}/{names[i % functions]}", None),
            )
        )
        rows.append(
            await phase(
                session,
                base,
                "status",
                statuses,
                concurrency,
                lambda i: ("GET", f"{BASE}/{names[i % functions]}/status", None),
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 / 200 / 200 requests")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--functions", type=int, default=None, help="registrations")
    parser.add_argument("--requests", type=int, default=None, help="gets and status requests")
    args = parser.parse_args()
    functions = args.functions or (20 if args.quick else 200)
    requests = args.requests or (200 if args.quick else 2000)
    started = datetime.now(UTC)
    home = Path(tempfile.mkdtemp(prefix="fnworker-rest-bench-"))
    worker = launch(home / "worker")
    try:
        wait_ready(worker, timeout=60)
        reply = call(worker.admin_url, "GET", BASE)
        if reply.status != 200:
            raise RuntimeError(f"list functions: {reply.status}")
        print(
            f"worker ready at {worker.admin_url}; {functions} registrations, {requests} gets"
            f" and status requests, {args.concurrency} concurrent",
            flush=True,
        )
        rows = asyncio.run(
            run_phases(worker.admin_url, functions, requests, requests, args.concurrency)
        )
    finally:
        stop(worker)
        shutil.rmtree(home, ignore_errors=True)
    report = {
        "benchmark": "REST API (scenario g)",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": {
            "functions": functions,
            "requests": requests,
            "concurrency": args.concurrency,
            "quick": args.quick,
            "runtime": "thread",
            "client": "aiohttp, keep-alive",
        },
        "results": rows,
    }
    out = results_dir() / ("rest-quick.json" if args.quick else "rest.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {out}")
    failed = sum(sum(row["errors"].values()) for row in rows)
    if failed:
        print(f"{failed} requests did not answer 200", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
