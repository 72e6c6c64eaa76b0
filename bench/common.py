"""What the benchmarks share: where results go and how the machine is described.

``FNWORKER_BENCH_RESULTS`` (set by ``bench/run_all.py --results-dir``, e.g. by the
quick-bench test) sends every JSON file to another directory than
``bench/results/``, so a CI run does not rewrite the committed results.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "bench" / "results"
RESULTS_ENV = "FNWORKER_BENCH_RESULTS"


def results_dir() -> Path:
    """The directory results are written to (created)."""
    folder = Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or ``unknown``."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def machine() -> dict[str, Any]:
    """nproc, CPU model, Python version and platform."""
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
