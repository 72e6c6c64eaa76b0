"""What ``bench/fleet_scale_bench.py`` watches: the fleet as one poll sees it (the
leader's table and what each worker runs), conditions timed from a phase's start,
the longest time each instance went unseen as running, and a guard that aborts the
run when the machine runs low on memory. Plain HTTP over loopback, no event loop."""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.common import mem_available_kib

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Loopback only: no proxy from the environment."""


def get_json(base: str, path: str, timeout: float = 10.0) -> Any:
    """GET ``base + path`` and decode its JSON body (raises on any failure)."""
    with OPENER.open(base + path, timeout=timeout) as reply:
        return json.loads(reply.read())


@dataclass(frozen=True)
class Snapshot:
    """The fleet as one poll saw it."""

    at: float
    """``time.monotonic()`` when the poll returned."""
    table: dict[str, str] | None
    """Instance -> worker, the leader's table (None: no answer)."""
    running: dict[str, list[str]]
    """Instance -> the workers that answered and run it."""
    answered: frozenset[str]
    """The workers whose running instances are in ``running``."""

    def counts(self, workers: Iterable[str]) -> dict[str, int]:
        """Instances per worker in the leader's table (0 for a worker without any)."""
        counts = dict.fromkeys(workers, 0)
        for worker in (self.table or {}).values():
            counts[worker] = counts.get(worker, 0) + 1
        return counts

    def settled(self, total: int) -> bool:
        """Every one of ``total`` instances is placed and runs exactly once, where placed."""
        table = self.table
        if table is None or len(table) != total or len(self.running) != total:
            return False
        return all(self.running.get(i) == [w] for i, w in table.items())


class Watch:
    """Polls the leader's table (through any live worker) and every live worker's
    running instances, the latter in parallel."""

    def __init__(self, urls: Callable[[], Mapping[str, str]], timeout: float) -> None:
        self.urls = urls
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(16, thread_name_prefix="watch")
        self.durations: list[float] = []

    def table(self, urls: Mapping[str, str]) -> dict[str, str] | None:
        """The leader's table, asked through the first worker that answers."""
        for url in urls.values():
            try:
                raw = get_json(url, "/admin/v2/worker/assignments", self.timeout)
            except Exception:  # noqa: BLE001 - a worker in transition; ask the next
                continue
            return {instance: w for w, instances in raw.items() for instance in instances}
        return None

    def held(self, url: str) -> list[str] | None:
        """The instances one worker runs right now (None: no answer)."""
        try:
            found = get_json(url, "/admin/v2/worker-stats/functionsmetrics", self.timeout)
        except Exception:  # noqa: BLE001
            return None
        return [entry["name"] for entry in found if entry["running"]]

    def snapshot(self) -> Snapshot:
        """One poll of the whole fleet."""
        started = time.monotonic()
        urls = dict(self.urls())
        held = self.pool.map(self.held, urls.values())
        table_future = self.pool.submit(self.table, urls)
        running: dict[str, list[str]] = {}
        answered = set()
        for name, names in zip(urls, held, strict=True):
            if names is None:
                continue
            answered.add(name)
            for instance in names:
                running.setdefault(instance, []).append(name)
        snap = Snapshot(time.monotonic(), table_future.result(), running, frozenset(answered))
        self.durations.append(snap.at - started)
        return snap

    def close(self) -> None:
        """Stop the polling threads."""
        self.pool.shutdown(wait=True)


Condition = Callable[[Snapshot], bool]


def timed(
    watch: Watch,
    t0: float,
    conditions: Mapping[str, Condition],
    limit: float,
    poll: float,
    guard: MemoryGuard,
    on_snapshot: Callable[[Snapshot], None] | None = None,
) -> tuple[dict[str, float | None], Snapshot]:
    """Poll every ``poll`` s until every condition held once or ``limit`` s passed
    since ``t0``; each condition's time is when the first poll that saw it returned,
    minus ``t0`` (None: not within the limit). Returns the times and the last poll."""
    times: dict[str, float | None] = dict.fromkeys(conditions)
    snap = watch.snapshot()
    while True:
        guard.check()
        if on_snapshot is not None:
            on_snapshot(snap)
        for name, condition in conditions.items():
            if times[name] is None and condition(snap):
                times[name] = snap.at - t0
        if all(t is not None for t in times.values()) or snap.at - t0 > limit:
            return times, snap
        time.sleep(max(0.0, poll - (time.monotonic() - snap.at)))
        snap = watch.snapshot()


@dataclass
class Gaps:
    """Per instance, the longest time between two polls that saw it running with
    polls between that did not (an upper bound: up to one poll interval too long)."""

    instances: set[str]
    seen_at: dict[str, float] = field(default_factory=dict)
    longest: dict[str, float] = field(default_factory=dict)
    polls: int = 0

    def sample(self, snap: Snapshot) -> None:
        """Take one poll into account."""
        self.polls += 1
        for instance in self.instances:
            if instance not in snap.running:
                continue
            last = self.seen_at.get(instance)
            if last is not None:
                gap = snap.at - last
                if gap > self.longest.get(instance, 0.0):
                    self.longest[instance] = gap
            self.seen_at[instance] = snap.at

    def report(self, threshold: float, poll: float) -> dict[str, Any]:
        """The distribution of each instance's longest gap, and how many exceeded
        ``threshold`` (gaps of at most about one poll are not gaps)."""
        gaps = sorted(g for g in self.longest.values() if g > 2 * poll)
        stale = [i for i in self.instances if i not in self.seen_at]
        return {
            "polls": self.polls,
            "instances_with_gap": len(gaps),
            "threshold_s": threshold,
            "over_threshold": sum(1 for g in gaps if g > threshold),
            "max_s": gaps[-1] if gaps else 0.0,
            "p50_s": statistics.median(gaps) if gaps else 0.0,
            "p99_s": gaps[int(0.99 * (len(gaps) - 1))] if gaps else 0.0,
            "never_seen_running": len(stale),
        }


class MemoryAbort(RuntimeError):
    """The machine ran low on memory; the run was stopped."""


class MemoryGuard:
    """Watches MemAvailable every half second; below ``floor_kib`` it SIGKILLs the
    processes the bench started (by PID) and makes ``check`` raise."""

    def __init__(self, floor_kib: int, pids: Callable[[], Iterable[int]]) -> None:
        self.floor_kib = floor_kib
        self.pids = pids
        self.tripped: str | None = None
        self.lowest_kib = mem_available_kib()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, name="memory-guard", daemon=True)
        self.thread.start()

    def run(self) -> None:
        """The guard's loop (its own thread)."""
        while not self.done.wait(0.5):
            available = mem_available_kib()
            self.lowest_kib = min(self.lowest_kib, available)
            if available < self.floor_kib:
                self.tripped = f"MemAvailable {available} KiB < {self.floor_kib} KiB"
                for pid in list(self.pids()):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                return

    def check(self) -> None:
        """Raise ``MemoryAbort`` if the guard tripped."""
        if self.tripped is not None:
            raise MemoryAbort(self.tripped)

    def stop(self) -> None:
        """End the guard's thread."""
        self.done.set()
        self.thread.join(timeout=5)
