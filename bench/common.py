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


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time ``pid`` has used so far, from /proc/<pid>/stat
    (None if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def smaps_kib(pid: int) -> dict[str, int]:
    """Rss, Pss and USS (Private_Clean + Private_Dirty) of ``pid`` in KiB, from
    /proc/<pid>/smaps_rollup (empty if it is gone or the kernel lacks the file)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
            values[key] = int(rest.split()[0])
    if not values:
        return {}
    return {
        "rss": values.get("Rss", 0),
        "pss": values.get("Pss", 0),
        "uss": values.get("Private_Clean", 0) + values.get("Private_Dirty", 0),
    }


def threads_and_fds(pid: int) -> tuple[int, int]:
    """How many threads and open file descriptors ``pid`` has (0, 0 if it is gone)."""
    threads = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0, 0
    return threads, fds


def mem_available_kib() -> int:
    """The machine's MemAvailable in KiB (from /proc/meminfo)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")
