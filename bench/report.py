"""Regenerates the summary table in bench/README.md (between ``<!-- summary:start -->``
and ``<!-- summary:end -->``) from the full runs' JSON in bench/results/, and draws
the scaling curves as PNGs into bench/results/ (matplotlib: ``pip install -e .[bench]``).

    .venv/bin/python bench/report.py [--results-dir DIR] [--no-plots]

A benchmark without its JSON file is listed as "not run". Quick runs
(``*-quick.json``) are not reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import DEFAULT_RESULTS, machine

README = ROOT / "bench" / "README.md"
START, END = "<!-- summary:start -->", "<!-- summary:end -->"
Row = tuple[str, str, str, str]  # measure, value, goal, met


def met(value: float | None, goal: float, *, at_most: bool = True) -> str:
    if value is None:
        return "–"
    return "yes" if (value <= goal if at_most else value >= goal) else "no"


def placement_rows(data: dict[str, Any]) -> list[Row]:
    rows = {r["scenario"]: r for r in data["results"]}
    full = rows["roundrobin: plan from nothing"]["median_ms"]
    replan = rows["roundrobin: re-plan, 1 worker lost, index"]
    n = data["setup"]["functions"] * data["setup"]["parallelism"]
    w = data["setup"]["workers"]
    return [
        (
            f"a. plan {n:,} instances on {w:,} workers (round-robin)",
            f"{full:.1f} ms",
            "≤ 50 ms",
            met(full, 50),
        ),
        (
            "a. re-plan after 1 worker lost (`PlacementIndex`)",
            f"{replan['median_ms']:.2f} ms, {replan['moves']} moved",
            "≤ 5 ms",
            met(replan["median_ms"], 5),
        ),
    ]


def leader_rows(data: dict[str, Any]) -> list[Row]:
    rows = {r["scenario"]: r for r in data["results"]}
    lost, idle = rows["1 worker lost"], rows["idle pass (nothing changed)"]
    n = data["setup"]["functions"] * data["setup"]["parallelism"]
    w = data["setup"]["workers"]
    return [
        (
            f"a. leader pass after 1 worker lost ({n:,} instances, {w:,} workers; `leader_pass`)",
            f"{lost['median_ms']:.2f} ms, {lost['changes'].get('worker_lost', 0)} moved",
            "≤ 5 ms",
            met(lost["median_ms"], 5),
        ),
        (
            "a. leader pass with nothing changed (`leader_pass`)",
            f"{idle['median_ms']:.2f} ms",
            "–",
            "–",
        ),
    ]


def fleet_rows(data: dict[str, Any]) -> list[Row]:
    rows = {r["scenario"].split()[0]: r for r in data["results"]}
    s = data["setup"]
    return [
        (
            f"b. {s['workers']:,} workers: register {s['instances']:,} instances, all observed",
            f"{rows['1']['observed_s']:.3f} s",
            "< 10 s",
            met(rows["1"]["observed_s"], 10),
        ),
        (
            f"b. kill {s['killed']} workers, reassignment observed",
            f"{rows['2']['observed_s']:.3f} s",
            "< 3 s",
            met(rows["2"]["observed_s"], 3),
        ),
    ]


def failover_rows(data: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for row in data["summary"]:
        if row["goal_s"] is None:
            continue
        value = f"p50 {row['p50']:.2f} s, max {row['max']:.2f} s" if row["max"] else "missed"
        goal = f"≤ {row['goal_s']:g} s"
        out.append(
            (
                f"c. {row['label']} ({data['instances']} instances)",
                value,
                goal,
                met(row["max"], row["goal_s"]),
            )
        )
    return out


def process_rows(data: dict[str, Any]) -> list[Row]:
    m = data["median"]
    return [
        (
            "d. identity fn, process runtime / raw pulsar-client loop",
            f"{m['ratio']:.2f}",
            "≥ 0.9",
            met(m["ratio"], 0.9, at_most=False),
        ),
        (
            "d. identity fn, thread runtime / raw loop",
            f"{m['thread_ratio']:.2f}",
            "≥ 0.9",
            met(m["thread_ratio"], 0.9, at_most=False),
        ),
        (
            "f. RSS per idle process-runtime instance",
            f"{m['idle_rss_mib']:.1f} MiB",
            "≤ 40 MiB",
            met(m["idle_rss_mib"], 40),
        ),
    ]


def memory_rows(data: dict[str, Any]) -> list[Row]:
    r = data["result"]
    return [
        (
            f"f. worker RSS, {r['instances']:,} idle thread-runtime instances",
            (
                f"{r['rss_mib']:.0f} MiB ({r['per_instance_kib']:.0f} KiB/instance over"
                f" {r['idle_worker_rss_mib']:.0f} MiB idle)"
            ),
            "–",
            "–",
        ),
    ]


def rest_rows(data: dict[str, Any]) -> list[Row]:
    c = data["setup"]["concurrency"]
    return [
        (
            f"g. REST `{r['operation']}`, {c} concurrent",
            (
                f"{r['requests_per_second']:,.0f}/s"
                f" (p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms)"
            ),
            "–",
            "–",
        )
        for r in data["results"]
    ]


def kubernetes_rows(data: dict[str, Any]) -> list[Row]:
    rows = {r["run"]: r for r in data["results"]}
    d = rows["default"]
    goal = data["goal"]
    runs = d.get("runs_seconds") or [d["seconds"]]
    spread = (
        f"median of {len(runs)}: " + " / ".join(f"{t:.2f}" for t in runs)
        if len(runs) > 1
        else "1 run"
    )
    size = (
        f"{goal['functions']:,} functions"
        if goal["scaled_from"] == goal["functions"]
        else f"{goal['functions']:,} functions (scaled from {goal['scaled_from']:,})"
    )
    out: list[Row] = [
        (
            (
                f"e. Kubernetes driver → in-test API server: {size} submitted"
                f" (limit {d['rate_limit_rps']:g} req/s)"
            ),
            f"{goal['scaled_seconds']:.2f} s ({spread})",
            f"≤ {goal['seconds']:g} s",
            met(goal["scaled_seconds"], goal["seconds"]),
        ),
    ]
    rate = f"{d['functions_per_second']:,.0f}/s ({d['requests_per_second']:,.0f} req/s)"
    if "no-validate" in rows:
        baseline = rows["no-validate"]["seconds"]
        rate += (
            f"; baseline without validation {baseline:.2f} s (ratio {d['seconds'] / baseline:.2f})"
        )
    out.append(("e. Kubernetes: functions/s (median run)", rate, "–", "–"))
    projection = data.get("go_client_projection")
    if projection:
        slow = rows["go-client"]
        out.append(
            (
                (
                    f"e. Kubernetes at client-go's {slow['rate_limit_rps']:g} req/s:"
                    f" {projection['functions']:,} functions (**projected**, not measured)"
                ),
                (
                    f"~{projection['from_measured_rate_s']:.0f} s projected"
                    f" ({slow['functions']} measured at"
                    f" {projection['steady_requests_per_second']:.2f} req/s)"
                ),
                "–",
                "–",
            )
        )
    return out


def containment_rows(data: dict[str, Any]) -> list[Row]:
    return [
        (
            f"h. 10 functions beside a {condition.split('-')[1]}-topic function"
            f" ({condition.split('-')[2]}) / alone, aggregate",
            (
                f"{row['aggregate_ratio_to_alone_median']:.2f}"
                f" (rounds {' / '.join(f'{x:.2f}' for x in row['aggregate_ratios'])})"
            ),
            "≥ 0.9",
            met(row["aggregate_ratio_to_alone_median"], 0.9, at_most=False),
        )
        for condition, row in data["summary"].items()
        if condition != "alone"
    ]


SOURCES: list[tuple[str, str, Callable[[dict[str, Any]], list[Row]]]] = [
    ("placement.json", "placement_bench.py", placement_rows),
    ("leader-pass.json", "leader_pass_bench.py", leader_rows),
    ("fleet.json", "fleet_bench.py", fleet_rows),
    ("failover.json", "failover_bench.py", failover_rows),
    ("process.json", "process_bench.py", process_rows),
    ("kubernetes.json", "kubernetes_bench.py", kubernetes_rows),
    ("memory.json", "memory_bench.py", memory_rows),
    ("rest.json", "rest_bench.py", rest_rows),
    ("containment.json", "containment_bench.py", containment_rows),
]


def date_of(data: dict[str, Any]) -> str:
    for key in ("date", "started_utc", "when", "run_utc"):
        if key in data:
            return str(data[key])[:16].replace("T", " ")
    return "?"


def summary_section(folder: Path) -> str:
    m = machine()
    lines = [
        START,
        "<!-- generated by bench/report.py from bench/results/*.json; do not edit by hand -->",
        "",
        (
            f"Summary of the latest full runs (machine of the report: nproc {m['nproc']},"
            f' CPU "{m["cpu"]}", Python {m["python"]}; a noisy shared VM). Values are'
            " medians where the bench repeats (a, b, d, e: 3-5 runs; c: p50 and max of the"
            " trials; h: 3 rounds); f and g are the last single run, see their sections"
            " for the spread."
        ),
        "",
        "| Measure | Value | Goal (2 cores) | Met | Bench | Run (UTC) |",
        "|---|---|---|:---:|---|---|",
    ]
    table: list[tuple[str, str]] = []  # (scenario letter, line); "~" sorts last
    for file, script, rows_of in SOURCES:
        path = folder / file
        if not path.exists():
            table.append(("~", f"| – | not run | – | – | `{script}` | – |"))
            continue
        data = json.loads(path.read_text())
        try:
            rows = rows_of(data)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
            table.append(("~", f"| – | unreadable ({error!r}) | – | – | `{script}` | – |"))
            continue
        for measure, value, goal, ok in rows:
            line = f"| {measure} | {value} | {goal} | {ok} | `{script}` | {date_of(data)} |"
            table.append((measure[0], line))
    # In scenario order a-g (process_bench.py has d and f rows); stable within a letter.
    lines += [line for _, line in sorted(table, key=lambda item: item[0])]
    pngs = ", ".join(f"[{p.name}](results/{p.name})" for p in sorted(folder.glob("*.png")))
    lines += ["", f"Plots: {pngs or 'none yet'}.", "", END]
    return "\n".join(lines)


def update_readme(section: str) -> None:
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{README} lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(head + section + tail)


def plots(folder: Path) -> list[Path]:
    """The scaling curves the JSON has; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        written.append(folder / name)

    placement = folder / "placement.json"
    if placement.exists() and (sweep := json.loads(placement.read_text()).get("sweep")):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        x = [p["instances"] for p in sweep]
        ax.loglog(
            x,
            [p["plan_from_nothing_median_ms"] for p in sweep],
            "o-",
            label="plan from nothing (round-robin)",
        )
        ax.loglog(
            x,
            [p["index_replan_median_ms"] for p in sweep],
            "s-",
            label="re-plan after 1 loss (PlacementIndex)",
        )
        ax.axhline(50, color="C0", ls=":", lw=1, label="goal 50 ms (100,000)")
        ax.axhline(5, color="C1", ls=":", lw=1, label="goal 5 ms (100,000)")
        ax.set_xlabel("instances (1,000 workers)")
        ax.set_ylabel("median ms")
        ax.set_title("Placement time vs instances")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "placement_sweep.png")

    memory = folder / "memory.json"
    if memory.exists() and (points := json.loads(memory.read_text()).get("points")):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        x = [p["instances"] for p in points]
        ax.plot(x, [p["rss_mib"] for p in points], "o-", label="worker RSS")
        ax.plot(x, [p["broker_rss_mib"] for p in points], "s-", label="embedded broker RSS")
        ax.set_xlabel("idle thread-runtime instances")
        ax.set_ylabel("MiB")
        ax.set_ylim(bottom=0)
        ax.set_title("Worker memory vs idle instances")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "memory_rss.png")

    failover = folder / "failover.json"
    if failover.exists():
        data = json.loads(failover.read_text())
        raw = data["trials_raw"]
        series = [
            ("kill", "reassigned", "SIGKILL: reassigned"),
            ("kill", "running", "SIGKILL: running"),
            ("stop", "running", "SIGSTOP: running"),
            ("leader", "new_leader", "leader SIGKILL: new leader"),
            ("leader", "running", "leader SIGKILL: running"),
        ]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for scenario, key, label in series:
            values = [t.get(key) for t in raw.get(scenario, [])]
            ax.plot(range(1, len(values) + 1), values, "o-", label=label)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("trial (same fleet)")
        ax.set_ylabel("seconds after the signal")
        ax.set_title(f"Failover, {data['instances']} instances on 3 workers")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "failover_trials.png")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_plots:
        for path in plots(args.results_dir):
            print(f"plot written to {path}")
    update_readme(summary_section(args.results_dir))
    print(f"summary table written to {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
