"""Keeps ``bench/fleet_scale_bench.py`` working: a tiny run (2 workers, 12 instances)
into a temporary results directory, checked for its exit code and a JSON report with
every phase. Numbers are measured, never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fleet_scale_bench_runs_every_phase_and_writes_json(tmp_path: Path) -> None:
    reply = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "fleet_scale_bench.py"),
            "--quick",
            "--workers=2",
            "--instances=12",
            "--idle-seconds=1",
            "--limit=40",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "FNWORKER_BENCH_RESULTS": str(tmp_path)},
    )
    assert reply.returncode == 0, reply.stdout[-4000:] + reply.stderr[-2000:]
    report = json.loads((tmp_path / "fleet-scale-quick.json").read_text())
    assert report["error"] is None
    assert report["registration"]["times_s"]["running"] is not None
    assert set(report["idle"]["workers"]) == {"w1", "w2"}
    assert report["join"]["worker"] == "w3"
    assert report["kill"]["times_s"]["running"] is not None
    assert [w["worker"] for w in report["rolling"]["workers"]] == ["w1", "w2", "w3"]
    assert all(w["converged_s"] is not None for w in report["rolling"]["workers"])
