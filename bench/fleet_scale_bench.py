"""A fleet of real ``fnworker worker`` processes at scale (issue 15 point 6).

One embedded pulsar-lite broker, ``--workers`` workers (default 8; thread runtime,
pulsar coordination, default timings and rebalance settings) and ``--instances``
idle instances (default 2,000: exclamation functions of ``--parallelism`` 10).
Phases, each timed from its start to the first poll (every ``--poll`` s) that sees
the condition, each with a time limit (``--limit``, by default 60 s + 0.1 s per
instance):

1. ``registration``: the functions are registered through the workers' REST API
   (round-robin, at most 8 at a time); ``assigned`` = the leader's table places
   every instance, ``running`` = every instance runs exactly once, where placed.
2. ``idle``: ``--idle-seconds`` with nobody polling; CPU of the broker and of each
   worker (utime + stime from /proc/<pid>/stat, in % of one core) and each worker's
   memory (RSS, PSS, USS from /proc/<pid>/smaps_rollup), threads and open files.
3. ``join``: one more worker starts; ``first_move`` = the leader's table gives it
   an instance, ``balanced`` = the table is even enough for the leader's hysteresis
   (``auto_rebalance.imbalanced`` is false), ``running`` = additionally every instance
   runs once where placed; then a quiet period, and the instances moved are counted.
4. ``kill``: SIGKILL of a non-leader; ``reassigned`` = the table places every
   instance and none on it, ``running`` = every one of its instances runs elsewhere.
   It is started again (same id) and the fleet settles.
5. ``rolling``: every worker in turn: SIGTERM, wait for its exit (SIGKILL after
   ``--exit-limit`` s), start it again with the same id, wait until it is a member
   and every instance runs exactly once; per worker and total. Meanwhile every poll
   records, per instance, the longest time it was not seen running (an upper bound:
   up to one poll interval plus one poll too long); how many exceeded
   ``--gap-threshold`` s. Works whatever SIGTERM does (stop at once or hand off).

Run from the repo root: ``.venv/bin/python bench/fleet_scale_bench.py [--quick]
[--workers N] [--instances N] [--idle-seconds S]``. Writes
``bench/results/fleet-scale.json`` (``fleet-scale-quick.json`` with ``--quick``).
Every process is stopped by PID in ``finally``; the run aborts (processes killed)
if MemAvailable drops below 2 GiB. The soft open-files limit is raised to the hard
one before any child starts (each worker and the broker inherit it).
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import machine, results_dir  # noqa: E402
from bench.fleet_scale_phases import Run, idle_cost, pick_names  # noqa: E402
from bench.fleet_scale_watch import MemoryGuard, Watch  # noqa: E402
from fnworker.coordination.embedded_broker import start_embedded_broker  # noqa: E402
from tests.fleet.conftest import Fleet, FleetWorker  # noqa: E402

MEMORY_FLOOR_KIB = 2 * 1024 * 1024


def log(message: str) -> None:
    """One timestamped progress line."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def raise_open_files() -> dict[str, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return {"soft_before": soft, "soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


@dataclass
class TunedFleet(Fleet):
    """The test fleet, every worker started with the same extra config keys."""

    settings: dict[str, Any] = field(default_factory=dict)

    def start(
        self,
        name: str,
        namespace: str = "public/functions",
        cluster: str = "standalone",
        **extra: Any,
    ) -> FleetWorker:
        return super().start(name, namespace, cluster, **{**self.settings, **extra})


def worker_settings(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as config keys, each value parsed as YAML."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        settings[key] = yaml.safe_load(value)
    return settings


def options() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 workers x 60 instances")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--instances", type=int, default=None)
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--idle-seconds", type=float, default=None)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between polls")
    parser.add_argument("--limit", type=float, default=None, help="seconds per phase")
    parser.add_argument("--exit-limit", type=float, default=60.0)
    parser.add_argument("--gap-threshold", type=float, default=1.0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a functions_worker.yml key for every worker (YAML value), repeatable",
    )
    args = parser.parse_args()
    args.workers = args.workers or (3 if args.quick else 8)
    args.instances = args.instances or (60 if args.quick else 2000)
    args.parallelism = args.parallelism or (3 if args.quick else 10)
    args.idle_seconds = args.idle_seconds or (10.0 if args.quick else 30.0)
    args.limit = args.limit or 60.0 + 0.1 * args.instances
    return args


def stop_all(fleet: Fleet) -> None:
    """SIGKILL every worker by its PID and reap it (nothing to hand off at the end)."""
    for worker in fleet.workers.values():
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGKILL)
    for worker in fleet.workers.values():
        try:
            worker.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log(f"{worker.name} (pid {worker.process.pid}) did not exit after SIGKILL")


def main() -> int:
    args = options()
    limits = raise_open_files()
    names = pick_names(args.workers + 1)
    root = Path(tempfile.mkdtemp(prefix="fnworker-fleet-scale-"))
    started = datetime.now(UTC)
    broker = start_embedded_broker(root / "broker")
    fleet = TunedFleet(broker_url=broker.url, root=root, settings=worker_settings(args.set))

    def pids() -> list[int]:
        alive = [w.process.pid for w in fleet.workers.values() if w.process.poll() is None]
        return [broker.pid, *alive]

    guard = MemoryGuard(MEMORY_FLOOR_KIB, pids)
    watch = Watch(
        lambda: {n: w.admin_url for n, w in fleet.workers.items() if w.process.poll() is None},
        10.0,
    )
    run = Run(fleet, watch, guard, args, log)
    results: dict[str, Any] = {}
    error: str | None = None
    try:
        results["formation"] = run.form(names[: args.workers])
        results["registration"] = run.registration()
        results["idle"] = idle_cost(broker.pid, fleet, args.idle_seconds, guard, log)
        results["join"] = run.join(names[args.workers])
        results["kill"] = run.kill()
        results["rolling"] = run.rolling()
    except Exception as failure:  # noqa: BLE001 - write what was measured, then fail
        error = f"{type(failure).__name__}: {failure}"
        log(f"run stopped: {error}")
    finally:
        guard.stop()
        watch.close()
        stop_all(fleet)
        broker.stop()
    polls = watch.durations
    out = results_dir() / ("fleet-scale-quick.json" if args.quick else "fleet-scale.json")
    report = {
        "started_utc": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "workers": args.workers,
        "instances": args.instances,
        "parallelism": args.parallelism,
        "poll_s": args.poll,
        "limit_s": args.limit,
        "poll_duration_s": {
            "p50": statistics.median(polls) if polls else None,
            "max": max(polls) if polls else None,
            "count": len(polls),
        },
        "worker_settings": fleet.settings,
        "open_files_limit": limits,
        "lowest_mem_available_mib": guard.lowest_kib // 1024,
        "memory_abort": guard.tripped,
        "error": error,
        **results,
    }
    out.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"wrote {out}")
    return 1 if error else 0


def fmt(value: float | None) -> str:
    """A number of seconds, percent or MiB for the table ("-" when not measured)."""
    return "-" if value is None else f"{value:.2f}"


def pair(spread: dict[str, Any], first: str = "median", second: str = "max") -> str:
    """Two values of a spread, ``a / b``."""
    return f"{fmt(spread[first])} / {fmt(spread[second])}"


def print_table(report: dict[str, Any]) -> None:
    """The measured values, one row each."""
    print(
        f"\n{report['workers']} workers, {report['instances']} instances "
        f"(parallelism {report['parallelism']}), poll {report['poll_s']} s"
    )
    rows: list[tuple[str, str]] = []
    for phase in ("registration", "join", "kill"):
        for key, value in report.get(phase, {}).get("times_s", {}).items():
            rows.append((f"{phase}: {key} s", fmt(value)))
        join = report.get("join")
        if phase == "join" and join:
            moved = f"{join['moved']} ({join['moved_to_new']})"
            rows.append(("join: instances moved (to the new worker)", moved))
            share = f"{join['new_count']} / {join['fair_share']}"
            rows.append(("join: new worker's count / fair share", share))
    rolling = report.get("rolling")
    if rolling:
        per = [w["converged_s"] for w in rolling["workers"] if w["converged_s"] is not None]
        each = {"median": statistics.median(per) if per else None, "max": max(per, default=None)}
        gaps = rolling["gaps"]
        rows.append(("rolling: total s", fmt(rolling["total_s"])))
        rows.append(("rolling: balanced again after the last, s", fmt(rolling["balanced_after_s"])))
        rows.append(("rolling: per worker s (median / max)", pair(each)))
        rows.append(
            ("rolling: longest not-running gap s (max / p50)", pair(gaps, "max_s", "p50_s"))
        )
        rows.append(
            (
                f"rolling: instances with a gap > {gaps['threshold_s']} s",
                str(gaps["over_threshold"]),
            )
        )
    idle = report.get("idle")
    if idle:
        rows.append(("idle: broker CPU % of one core", fmt(idle["broker"]["cpu_percent"])))
        rows.append(("idle: worker CPU % (median / max)", pair(idle["worker_cpu_percent"])))
        rows.append(
            (
                "idle: fleet CPU % per worker (incl. broker)",
                fmt(idle["fleet_cpu_percent_per_worker"]),
            )
        )
        rows.append(("idle: worker RSS MiB (median / max)", pair(idle["worker_rss_mib"])))
        rows.append(("idle: worker USS MiB (median / max)", pair(idle["worker_uss_mib"])))
    for label, value in rows:
        print(f"  {label:<52} {value:>14}")
    if report["error"]:
        print(f"  ERROR: {report['error']}")


if __name__ == "__main__":
    sys.exit(main())
