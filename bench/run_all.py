"""Runs every benchmark (or the ones named), each as a subprocess with a time limit.

    .venv/bin/python bench/run_all.py [--quick] [--results-dir DIR] [NAME ...]

NAME is any of: placement, leader, fleet, process, failover, memory, rest, kubernetes,
containment (default: all, in that order). ``--quick`` is passed to every benchmark
(small sizes, seconds each). Each benchmark's output is streamed with a
``[name  12.3s]`` prefix; at the end a summary table is printed and
``summary.json`` (``summary-quick.json`` with ``--quick``) is written next to the
benchmarks' own JSON files, in
``bench/results/`` or ``--results-dir``. A benchmark that overruns its time limit
gets SIGTERM (its own process group, so its ``finally`` stops what it started),
then SIGKILL 15 s later. Everything runs on loopback. Exits 1 if any benchmark
failed, timed out or wrote no JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import DEFAULT_RESULTS, RESULTS_ENV, machine


def _get(data: dict[str, Any], *path: Any) -> Any:
    for key in path:
        data = data[key]
    return data


def _placement(data: dict[str, Any]) -> str:
    rows = {r["scenario"]: r for r in data["results"]}
    full = rows["roundrobin: plan from nothing"]["median_ms"]
    index = rows["roundrobin: re-plan, 1 worker lost, index"]["median_ms"]
    n = data["setup"]["functions"] * data["setup"]["parallelism"]
    return f"{n:,} inst: plan {full:.1f} ms, index re-plan {index:.2f} ms"


def _leader(data: dict[str, Any]) -> str:
    rows = {r["scenario"]: r for r in data["results"]}
    lost = rows["1 worker lost"]["median_ms"]
    idle = rows["idle pass (nothing changed)"]["median_ms"]
    n = data["setup"]["functions"] * data["setup"]["parallelism"]
    return f"{n:,} inst: leader pass after 1 lost {lost:.2f} ms, idle pass {idle:.2f} ms"


def _fleet(data: dict[str, Any]) -> str:
    rows = {r["scenario"].split()[0]: r for r in data["results"]}
    setup = data["setup"]
    return (
        f"{setup.get('workers', '?'):,} workers: register observed"
        f" {rows['1']['observed_s']:.3f} s, kill 10% observed {rows['2']['observed_s']:.3f} s"
    )


def _process(data: dict[str, Any]) -> str:
    m = data["median"]
    return (
        f"process/raw {m['ratio']:.2f}, thread/raw {m['thread_ratio']:.2f},"
        f" {m['instances_per_second']:.1f} starts/s, idle {m['idle_rss_mib']:.1f} MiB"
    )


def _failover(data: dict[str, Any]) -> str:
    rows = {(r["scenario"], r["measure"]): r for r in data["summary"]}

    def p50(key: tuple[str, str]) -> str:
        value = rows[key]["p50"]
        return "-" if value is None else f"{value:.2f}"

    return (
        f"kill running p50 {p50(('kill', 'running'))} s, stop running"
        f" {p50(('stop', 'running'))} s, new leader {p50(('leader', 'new_leader'))} s"
    )


def _memory(data: dict[str, Any]) -> str:
    r = data["result"]
    return (
        f"{r['instances']:,} idle thread instances: worker RSS {r['rss_mib']:.0f} MiB"
        f" ({r['per_instance_kib']:.0f} KiB/instance over idle)"
    )


def _rest(data: dict[str, Any]) -> str:
    rows = data["results"]
    return ", ".join(f"{r['operation']} {r['requests_per_second']:.0f}/s" for r in rows)


def _kubernetes(data: dict[str, Any]) -> str:
    rows = {r["run"]: r for r in data["results"]}
    d = rows["default"]
    runs = d.get("runs_seconds") or [d["seconds"]]
    median = f", median of {len(runs)}" if len(runs) > 1 else ""
    text = (
        f"{d['functions']:,} functions in {d['seconds']:.1f} s"
        f" ({d['functions_per_second']:.0f}/s, {d['requests_per_second']:.0f} req/s"
        f" at limit {d['rate_limit_rps']:g}/s{median})"
    )
    projection = data.get("go_client_projection")
    if projection:
        text += f"; 5 req/s projected {projection['from_measured_rate_s']:.0f} s"
    return text


def _containment(data: dict[str, Any]) -> str:
    rows = data["summary"]
    return (
        ", ".join(
            f"{name} {row['aggregate_ratio_to_alone_median']:.2f}"
            for name, row in rows.items()
            if name != "alone"
        )
        + f" (alone {rows['alone']['aggregate_msgs_per_second_median']:,} msg/s)"
    )


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    result: str
    """The JSON file the full run writes; the quick run writes ``<stem>-quick.json``."""
    limit_s: float
    quick_limit_s: float
    headline: Callable[[dict[str, Any]], str]

    def result_file(self, folder: Path, quick: bool) -> Path:
        stem = self.result.removesuffix(".json")
        return folder / (f"{stem}-quick.json" if quick else self.result)


BENCHES = [
    Bench("placement", "placement_bench.py", "placement.json", 180, 60, _placement),
    Bench("leader", "leader_pass_bench.py", "leader-pass.json", 180, 60, _leader),
    Bench("fleet", "fleet_bench.py", "fleet.json", 300, 60, _fleet),
    Bench("process", "process_bench.py", "process.json", 600, 90, _process),
    Bench("failover", "failover_bench.py", "failover.json", 900, 120, _failover),
    Bench("memory", "memory_bench.py", "memory.json", 900, 120, _memory),
    Bench("rest", "rest_bench.py", "rest.json", 300, 90, _rest),
    Bench("kubernetes", "kubernetes_bench.py", "kubernetes.json", 300, 60, _kubernetes),
    Bench("containment", "containment_bench.py", "containment.json", 900, 120, _containment),
]
BY_NAME = {bench.name: bench for bench in BENCHES}


def stream(pipe: Any, prefix: Callable[[], str]) -> None:
    """Print every line of ``pipe`` with the prefix, as it comes."""
    for raw in iter(pipe.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        print(f"{prefix()} {line}", flush=True)
    pipe.close()


def end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the benchmark's process group, then SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_one(bench: Bench, quick: bool, folder: Path, limit: float) -> dict[str, Any]:
    """Run one benchmark to completion or its limit; what happened and its headline."""
    out = bench.result_file(folder, quick)
    command = [sys.executable, str(ROOT / "bench" / bench.script), *(["--quick"] if quick else [])]
    began_wall = time.time()
    began = time.monotonic()
    label = f"[{bench.name:<9}"
    print(f"{label}] $ {' '.join(command)}  (limit {limit:.0f} s)", flush=True)
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, RESULTS_ENV: str(folder), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,  # its own process group, ended by its id on a timeout
    )
    reader = threading.Thread(
        target=stream,
        args=(process.stdout, lambda: f"{label} {time.monotonic() - began:6.1f}s]"),
        daemon=True,
    )
    reader.start()
    timed_out = False
    try:
        returncode = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        print(f"{label}] time limit of {limit:.0f} s reached; stopping it", flush=True)
        end_group(process)
        returncode = process.wait()
    except KeyboardInterrupt:
        end_group(process)
        raise
    reader.join(timeout=5)
    seconds = time.monotonic() - began
    wrote = out.exists() and out.stat().st_mtime >= began_wall - 1
    headline = ""
    if wrote:
        try:
            headline = bench.headline(json.loads(out.read_text()))
        except (KeyError, TypeError, ValueError, IndexError) as error:
            headline = f"(no headline: {error!r})"
    if timed_out:
        status = "timeout"
    elif returncode != 0:
        status = f"failed ({returncode})"
    elif not wrote:
        status = "no json"
    else:
        status = "ok"
    return {
        "name": bench.name,
        "status": status,
        "returncode": returncode,
        "seconds": round(seconds, 1),
        "limit_s": limit,
        "results": str(out) if wrote else None,
        "headline": headline,
    }


def print_summary(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'benchmark':<10} {'status':<11} {'seconds':>8}  headline")
    for row in rows:
        print(f"{row['name']:<10} {row['status']:<11} {row['seconds']:8.1f}  {row['headline']}")
    print()
    for row in rows:
        if row["results"]:
            print(f"  {row['name']}: {row['results']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BY_NAME))
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument("--results-dir", type=Path, default=None, help="default bench/results")
    parser.add_argument(
        "--limit-scale", type=float, default=1.0, help="multiply every time limit by this"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    chosen = [BY_NAME[name] for name in args.names] if args.names else BENCHES
    folder = (args.results_dir or DEFAULT_RESULTS).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    rows = []
    for bench in chosen:
        limit = (bench.quick_limit_s if args.quick else bench.limit_s) * args.limit_scale
        rows.append(run_one(bench, args.quick, folder, limit))
    print_summary(rows)
    summary = folder / ("summary-quick.json" if args.quick else "summary.json")
    summary.write_text(
        json.dumps(
            {
                "started_utc": started.isoformat(timespec="seconds"),
                "machine": machine(),
                "quick": args.quick,
                "benchmarks": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"summary written to {summary}")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
