"""Keeps the benchmark suite working: ``bench/run_all.py --quick`` for the fast
benchmarks, into a temporary results directory (the committed results are not
touched). Only exit codes and written JSON are checked; numbers are measured,
never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FAST = ["placement", "fleet", "process", "failover", "memory", "rest", "kubernetes"]


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_quick_benches_run_and_write_json(tmp_path: Path) -> None:
    reply = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run_all.py"),
            "--quick",
            "--results-dir",
            str(tmp_path),
            *FAST,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert reply.returncode == 0, reply.stdout[-4000:] + reply.stderr[-2000:]
    summary = json.loads((tmp_path / "summary-quick.json").read_text())
    assert [row["name"] for row in summary["benchmarks"]] == FAST
    for row in summary["benchmarks"]:
        assert row["status"] == "ok", row
        written = tmp_path / f"{row['name']}-quick.json"
        assert Path(row["results"]) == written
        json.loads(written.read_text())
    assert "summary written to" in reply.stdout
