"""Kubernetes submission benchmark (issue 7 scenario e): functions per second through
the real Kubernetes runtime driver (kubernetes-asyncio) against the in-test API server
(``tests/harness/kubernetes_api.py``, on an event loop of its own thread, 127.0.0.1 only),
against the driver's client-side rate limit.

Each function is ``start`` of its instance 0 (parallelism 1, no auth Secret), which
creates its Service and StatefulSet (two POSTs; the fake server validates both bodies
against the Kubernetes 1.30 schemas and its toy controller adds the pod); the
driver also keeps one pod watch for the namespace. At most ``--concurrency`` starts
are in flight (default 32). Timing runs from the first start to the last start
returning; then the StatefulSets on the server are counted (all N must exist, else
exit 1).

Runs (each on a fresh server and driver):

- ``default``: N functions (default 1,000; ``--quick`` 50) with the driver's default
  rate limit, ``k8RequestsPerSecond`` 200 / ``k8RequestBurst`` 200, ``--runs`` times
  (default 3; ``--quick`` 1); the run with the median time is reported as ``default``,
  every run is in ``default_runs``;
- ``no-validate`` (the baseline, measured in the same invocation; ``--no-baseline``
  skips it): the same N with the fake server's schema validation off, so the ratio
  default / no-validate is what validation costs; beside it the rate-limit floor
  ``(requests - burst) / rate`` (arithmetic, not measured);
- ``go-client``: a small N (20; ``--quick`` 10) at client-go's default QPS 5 /
  burst 10, to show the ratio. Its time for 1,000 functions is *projected* (not
  measured): ``(1,000 x requests per function - burst)`` at the requests/s measured
  after the burst, and also by the rate-limit arithmetic ``(requests - burst) / 5``.
  ``--no-go-client`` skips it.

Reports functions/s, total seconds and requests/s (all requests the server saw,
watch included) beside the goal: 1,000 functions in 15 s or less. Client and server
share one process (and the GIL) and the machine's cores, so this is a lower bound of
the driver alone. The fake server validates with one cached validator per kind
(``tests/harness/kubernetes_schema.py``; it used to rebuild it on every call, which made the
1,000-function run take ~31 s) and its watch reads only the events it has not sent.
``--no-validate`` turns the fake server's schema validation off in every run.

    .venv/bin/python bench/kubernetes_bench.py [--quick] [--functions N] [--runs N]
        [--concurrency N] [--no-go-client] [--no-baseline] [--no-validate]

Writes ``bench/results/kubernetes.json`` (``kubernetes-quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import structlog

import tests.harness.kubernetes_api
from bench.common import machine, results_dir
from fnworker.runtimes.kubernetes.driver import KubernetesRuntime
from fnworker.runtimes.kubernetes.settings import KubernetesSettings
from fnworker.scheduler.model.instances import ClientSettings, InstanceSpec
from fnworker.scheduler.model.records import FunctionConfig, FunctionRecord, fqfn_of, instance_id_of
from tests.harness.kubernetes_api import ThreadedKubernetesApi

GOAL_FUNCTIONS = 1000
GOAL_SECONDS = 15.0
GO_CLIENT_QPS = 5.0
GO_CLIENT_BURST = 10


def spec(index: int) -> InstanceSpec:
    """Instance 0 of function ``fn-<index>`` (parallelism 1)."""
    name = f"fn-{index:04d}"
    record = FunctionRecord(
        fqfn=fqfn_of("public", "default", name),
        version=1,
        config=FunctionConfig(tenant="public", namespace="default", name=name, parallelism=1),
    )
    return InstanceSpec(
        instance=instance_id_of(record.fqfn, 0),
        index=0,
        function=record,
        package_path=Path("/nonexistent/function.py"),
        worker_id="bench-worker",
        client=ClientSettings(service_url="pulsar://localhost:6650"),
    )


@contextmanager
def validation_off() -> Iterator[None]:
    """The fake server skips its schema validation while inside."""
    saved = tests.harness.kubernetes_api.validate  # type: ignore[attr-defined]
    tests.harness.kubernetes_api.validate = lambda manifest: None  # type: ignore[attr-defined]
    try:
        yield
    finally:
        tests.harness.kubernetes_api.validate = saved  # type: ignore[attr-defined]


def rate_floor_s(run: dict[str, Any]) -> float:
    """What the token bucket alone allows: ``(requests - burst) / rate`` (arithmetic)."""
    return float(max(0.0, run["requests"] - run["burst"]) / run["rate_limit_rps"])


def on_server(server: ThreadedKubernetesApi, what: Any) -> Any:
    """Run ``what()`` on the server's loop (its dicts are only touched there)."""

    async def call() -> Any:
        return what()

    return asyncio.run_coroutine_threadsafe(call(), server.loop).result(30)


async def submit(
    label: str, functions: int, rate: float, burst: int, concurrency: int
) -> dict[str, Any]:
    """Start ``functions`` functions through one driver; timings and request counts."""
    server = ThreadedKubernetesApi()
    api = server.api
    driver = KubernetesRuntime(
        KubernetesSettings(),
        k8_uri=api.url,
        requests_per_second=rate,
        burst=burst,
        delete_grace_seconds=0,
        worker_id="bench-worker",
    )
    specs = [spec(i) for i in range(functions)]
    print(
        f"{label}: {functions:,} functions, rate limit {rate:g} req/s burst {burst},"
        f" concurrency {concurrency}, server {api.url}",
        flush=True,
    )
    runner = asyncio.get_running_loop().create_task(driver.run())  # as the worker's root group
    try:
        semaphore = asyncio.Semaphore(concurrency)
        done = 0
        report_every = max(1, functions // 5)

        async def one(item: InstanceSpec) -> None:
            nonlocal done
            async with semaphore:
                await driver.start(item)
            done += 1
            if done % report_every == 0 or done == functions:
                print(
                    f"  {label}: {done:,}/{functions:,} started"
                    f" ({time.perf_counter() - began:.1f} s)",
                    flush=True,
                )

        began = time.perf_counter()
        await asyncio.gather(*(one(item) for item in specs))
        seconds = time.perf_counter() - began
        stateful_sets = on_server(server, lambda: len(api.names("statefulsets")))
        services = on_server(server, lambda: len(api.names("services")))
        by_verb: dict[str, int] = {}
        for verb, resource, _ns, _name in on_server(server, lambda: list(api.requests)):
            key = f"{verb} {resource}"
            by_verb[key] = by_verb.get(key, 0) + 1
    finally:
        await driver.aclose()  # ends driver.run
        await runner
        await asyncio.to_thread(server.close)
    requests = sum(by_verb.values())
    per_function = requests / functions
    result: dict[str, Any] = {
        "run": label,
        "functions": functions,
        "rate_limit_rps": rate,
        "burst": burst,
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "functions_per_second": round(functions / seconds, 1),
        "requests": requests,
        "requests_per_function": round(per_function, 3),
        "requests_per_second": round(requests / seconds, 1),
        "requests_by_verb": dict(sorted(by_verb.items())),
        "stateful_sets": stateful_sets,
        "services": services,
        "complete": stateful_sets == functions and services == functions,
    }
    print(
        f"  {label}: {functions:,} functions in {seconds:.2f} s ="
        f" {result['functions_per_second']:.1f} functions/s,"
        f" {requests:,} requests ({per_function:.2f}/function) ="
        f" {result['requests_per_second']:.1f} req/s;"
        f" {stateful_sets:,} StatefulSets, {services:,} Services on the server",
        flush=True,
    )
    return result


def project(run: dict[str, Any]) -> dict[str, Any]:
    """Projected (not measured) time for 1,000 functions at the run's rate limit."""
    requests = GOAL_FUNCTIONS * run["requests_per_function"]
    # The burst goes out at once; the rest at the measured pace after it.
    steady_rps = max(1e-9, run["requests"] - run["burst"]) / run["seconds"]
    return {
        "functions": GOAL_FUNCTIONS,
        "steady_requests_per_second": round(steady_rps, 2),
        "from_measured_rate_s": round(max(0.0, requests - run["burst"]) / steady_rps, 1),
        "from_rate_limit_s": round(max(0.0, requests - run["burst"]) / run["rate_limit_rps"], 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    functions = args.functions or (50 if args.quick else GOAL_FUNCTIONS)
    repeat = args.runs or (1 if args.quick else 3)
    default_runs = []
    for number in range(1, repeat + 1):
        default_runs.append(
            await submit(f"default {number}/{repeat}", functions, 200.0, 200, args.concurrency)
        )
    times = [r["seconds"] for r in default_runs]
    default = dict(next(r for r in default_runs if r["seconds"] == statistics.median_low(times)))
    default["run"] = "default"
    default["runs_seconds"] = times
    print(
        f"default: median {default['seconds']:.2f} s of {repeat} runs"
        f" ({' / '.join(f'{t:.2f}' for t in times)});"
        f" rate-limit floor {rate_floor_s(default):.2f} s (arithmetic)",
        flush=True,
    )
    runs = [default]
    if not args.no_baseline:
        with validation_off():
            baseline = await submit("no-validate", functions, 200.0, 200, args.concurrency)
        runs.append(baseline)
        floor = rate_floor_s(baseline)
        print(
            f"  baseline: default / no-validate = {default['seconds'] / baseline['seconds']:.2f}"
            f" ({default['seconds']:.2f} s / {baseline['seconds']:.2f} s)"
            + (
                f"; no-validate / rate-limit floor = {baseline['seconds'] / floor:.2f}"
                if floor > 0
                else "; within the burst, no rate-limit floor"
            ),
            flush=True,
        )
    verdict = "met" if default["seconds"] * GOAL_FUNCTIONS / functions <= GOAL_SECONDS else "missed"
    scaled = default["seconds"] * GOAL_FUNCTIONS / functions
    how = "measured" if functions == GOAL_FUNCTIONS else f"scaled from {functions:,}"
    print(
        f"goal: {GOAL_FUNCTIONS:,} functions in {GOAL_SECONDS:g} s or less;"
        f" {how}: {scaled:.2f} s -> {verdict}",
        flush=True,
    )
    projection = None
    if not args.no_go_client:
        slow_n = 10 if args.quick else 20
        slow = await submit("go-client", slow_n, GO_CLIENT_QPS, GO_CLIENT_BURST, args.concurrency)
        runs.append(slow)
        projection = project(slow)
        print(
            f"  go-client 5 req/s: PROJECTED (not measured) for {GOAL_FUNCTIONS:,} functions:"
            f" {projection['from_measured_rate_s']:.0f} s from the measured"
            f" {projection['steady_requests_per_second']:.2f} req/s after the burst"
            f" ({projection['from_rate_limit_s']:.0f} s by the limit arithmetic);"
            f" {projection['from_measured_rate_s'] / scaled:.0f}x the default run's"
            f" {scaled:.1f} s",
            flush=True,
        )
    return {
        "benchmark": "kubernetes",
        "issue": "7e",
        "quick": args.quick,
        "server_validates": not args.no_validate,
        "runs": repeat,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "goal": {
            "functions": GOAL_FUNCTIONS,
            "seconds": GOAL_SECONDS,
            "scaled_seconds": round(scaled, 2),
            "scaled_from": functions,
            "verdict": verdict,
        },
        "results": runs,
        "default_runs": default_runs,
        "rate_limit_floor_s": round(rate_floor_s(default), 3),
        "go_client_projection": projection,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 functions (10 at 5 req/s)")
    parser.add_argument("--functions", type=int, default=None, help="default run size")
    parser.add_argument(
        "--runs", type=int, default=None, help="default runs, median reported (3; quick 1)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="starts in flight")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the no-validate baseline run"
    )
    parser.add_argument("--no-go-client", action="store_true", help="skip the 5 req/s run")
    parser.add_argument(
        "--no-validate",
        action="store_true",
        help="skip the fake server's schema validation (isolates the driver's own cost)",
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.no_validate:
        with validation_off():
            report = asyncio.run(main_async(args))
    else:
        report = asyncio.run(main_async(args))
    out = results_dir() / ("kubernetes-quick.json" if args.quick else "kubernetes.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {out}", flush=True)
    everything = report["default_runs"] + report["results"][1:]
    incomplete = [r["run"] for r in everything if not r["complete"]]
    if incomplete:
        print(f"not every function was created on the server: {incomplete}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
