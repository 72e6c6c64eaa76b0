"""Per-call cost of the in-test API server's schema validation (issue 7 scenario e):
``kubernetes_validate.validate(body, "1.30.0", strict=True)`` (the library, which
re-reads its schema files and builds a new validator on every call; the baseline)
against ``tests/kubernetes_schema.validate`` (one cached validator per kind), on the
bodies the Kubernetes driver sends for one function: its StatefulSet and Service.

Each body is first checked to get the same verdict from both (valid, and a copy with an
unknown field rejected by both). Then, for each body and each validator, ``--repeat``
timed rounds (default 7) of ``--calls`` calls (library: default 20; cached: 20 x 50),
one untimed warm-up call first (so the cached column excludes the one-off build, which
is reported apart); the per-call time of a round is its time over its calls, and the
median and min of the rounds are reported, with the ratio library / cached.

    .venv/bin/python bench/kubernetes_schema_bench.py [--repeat N] [--calls N]

Writes ``bench/results/kubernetes-schema.json``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import kubernetes_validate

from bench.common import machine, results_dir
from fnworker.runtimes.kubernetes.manifests import render
from fnworker.runtimes.kubernetes.settings import KubernetesSettings
from fnworker.scheduler.model.records import FunctionConfig, FunctionRecord, fqfn_of
from tests.harness import kubernetes_schema

CACHED_FACTOR = 50  # the cached validator is fast: more calls per round


def bodies() -> dict[str, dict[str, Any]]:
    """The StatefulSet and Service of one function, as the driver renders them."""
    record = FunctionRecord(
        fqfn=fqfn_of("public", "default", "fn-0000"),
        version=1,
        config=FunctionConfig(tenant="public", namespace="default", name="fn-0000", parallelism=1),
    )
    job = render(record, KubernetesSettings())
    return {"StatefulSet": job.stateful_set, "Service": job.service}


def library(body: dict[str, Any]) -> None:
    kubernetes_validate.validate(body, kubernetes_schema.KUBERNETES_VERSION, strict=True)


def rejects(check: Callable[[dict[str, Any]], None], body: dict[str, Any]) -> bool:
    try:
        check(body)
    except kubernetes_validate.ValidationError:
        return True
    return False


def per_call_ms(check: Callable[[dict[str, Any]], None], body: dict[str, Any], calls: int,
                repeat: int) -> list[float]:  # fmt: skip
    check(body)  # warm-up
    rounds = []
    for _ in range(repeat):
        gc.collect()
        began = time.perf_counter()
        for _ in range(calls):
            check(body)
        rounds.append((time.perf_counter() - began) * 1000 / calls)
    return rounds


def summary(rounds: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(rounds), 4),
        "min": round(min(rounds), 4),
        "rounds": [round(v, 4) for v in rounds],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per row")
    parser.add_argument("--calls", type=int, default=20, help="library calls per round")
    args = parser.parse_args()

    began = time.perf_counter()
    first = bodies()["StatefulSet"]
    kubernetes_schema.validate(first)
    build_ms = (time.perf_counter() - began) * 1000  # definitions read + one validator

    results = []
    for kind, body in bodies().items():
        broken = copy.deepcopy(body)
        broken["spec"]["unknownField"] = 1
        same = (
            not rejects(library, body)
            and not rejects(kubernetes_schema.validate, body)
            and rejects(library, broken)
            and rejects(kubernetes_schema.validate, broken)
        )
        if not same:
            print(f"{kind}: the two validators disagree", flush=True)
            return 1
        before = per_call_ms(library, body, args.calls, args.repeat)
        after = per_call_ms(
            kubernetes_schema.validate, body, args.calls * CACHED_FACTOR, args.repeat
        )
        row: dict[str, Any] = {
            "kind": kind,
            "library_ms": summary(before),
            "cached_ms": summary(after),
            "ratio_library_over_cached": round(
                statistics.median(before) / statistics.median(after), 1
            ),
        }
        results.append(row)
        print(
            f"{kind:12s} library {row['library_ms']['median']:8.3f} ms/call"
            f" (min {row['library_ms']['min']:.3f}), cached {row['cached_ms']['median']:.4f}"
            f" ms/call (min {row['cached_ms']['min']:.4f}):"
            f" {row['ratio_library_over_cached']:.0f}x",
            flush=True,
        )
    print(f"one-off build (definitions + StatefulSet validator + first call): {build_ms:.0f} ms")
    report = {
        "benchmark": "kubernetes-schema",
        "issue": "7e",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "kubernetes_version": kubernetes_schema.KUBERNETES_VERSION,
        "repeat": args.repeat,
        "library_calls_per_round": args.calls,
        "cached_calls_per_round": args.calls * CACHED_FACTOR,
        "first_call_build_ms": round(build_ms, 1),
        "results": results,
    }
    out = results_dir() / "kubernetes-schema.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results written to {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
