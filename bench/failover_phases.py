"""Where the time of one failover goes, read from the workers' structured log lines
(``timestamp='...' level=... logger=... event='...' key=value ...``). Reading the log
files is the only I/O; the rest is pure.

From the signal (``t0``, wall clock) to every victim instance observed running on a
survivor, five phases that add up to the observed time:

- ``detection``: until a survivor says the victim is gone ("workers declared dead"
  naming it, or a survivor "leading" after a leader was killed);
- ``plan``: until the leader's next "assignments planned" (``worker_lost``; ``new``
  for a killed leader's instances, which the new leader finds unplaced);
- ``delivery``: until the first survivor's "reconcile pass" with starts (the
  assignment records published, read from its own topic, applied; without such
  lines, its first "instance opening" of a victim instance);
- ``starting``: until the last victim instance's "instance started" (the thread
  runtime's line, once its consumer and producer are open and its loop runs);
- ``observation``: until the bench's poll of ``functionsmetrics`` saw them all.

Besides: per survivor, when it began and how many it started; per instance, how long
opening took (``opening`` to ``started``) and its steps (``load_ms``, ``ids_ms``,
``subscribe_ms``, ``output_ms`` on the "instance started" line).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

PHASES = ("detection", "plan", "delivery", "starting", "observation")
STEPS = ("load_ms", "ids_ms", "subscribe_ms", "output_ms")
LINE = re.compile(r"^timestamp='([^']+)' level='?(\w+)'? logger='([^']+)' event='([^']*)'(.*)$")
FIELD = re.compile(r"(\w+)=('[^']*'|[^\s]+)")
RUNTIME_LOGGER = "fnworker.runtime.thread"


@dataclass(frozen=True)
class LogEvent:
    """One structured log line of one worker."""

    at: float
    """Wall-clock seconds (Unix time) of the line's timestamp."""
    worker: str
    logger: str
    event: str
    fields: dict[str, str] = field(default_factory=dict)
    rest: str = ""


def parse_line(worker: str, line: str) -> LogEvent | None:
    """The event of one log line, or None for a line that is not structured."""
    match = LINE.match(line.strip())
    if match is None:
        return None
    stamp, _level, logger, event, rest = match.groups()
    at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    fields = {key: value.strip("'") for key, value in FIELD.findall(rest)}
    return LogEvent(at=at, worker=worker, logger=logger, event=event, fields=fields, rest=rest)


def read_events(logs: dict[str, Path], since: float, until: float) -> list[LogEvent]:
    """Every structured line of the given workers' logs between two wall-clock times,
    in time order."""
    events: list[LogEvent] = []
    for worker, path in logs.items():
        for line in path.read_text(errors="replace").splitlines():
            parsed = parse_line(worker, line)
            if parsed is not None and since <= parsed.at <= until:
                events.append(parsed)
    return sorted(events, key=lambda e: e.at)


class StartedTail:
    """Follows worker logs from where they end now and collects the instances whose
    "instance started" line (the thread runtime's) has appeared since: the bench asks
    ``functionsmetrics`` (costly for the workers at 1,000 instances) only once the logs
    say every moved instance started. Reads only what was appended (file offsets)."""

    def __init__(self, logs: dict[str, Path]) -> None:
        self.offsets = {path: path.stat().st_size for path in logs.values()}
        self.started: set[str] = set()
        self.partial: dict[Path, bytes] = {}

    def all_started(self, moved: set[str]) -> bool:
        """Read what was appended; True once every instance of ``moved`` has started."""
        for path, offset in self.offsets.items():
            with path.open("rb") as log:
                log.seek(offset)
                data = log.read()
            self.offsets[path] = offset + len(data)
            lines = (self.partial.pop(path, b"") + data).split(b"\n")
            self.partial[path] = lines.pop()  # an unfinished last line, read on next time
            for line in lines:
                if b"event='instance started'" in line and RUNTIME_LOGGER.encode() in line:
                    parsed = parse_line("", line.decode(errors="replace"))
                    if parsed is not None:
                        self.started.add(parsed.fields.get("instance", ""))
        return moved <= self.started


def first(events: list[LogEvent], after: float, test: Any) -> LogEvent | None:
    """The first event at or after ``after`` for which ``test`` holds."""
    return next((e for e in events if e.at >= after and test(e)), None)


def gone(victim: str, survivors: set[str]) -> Any:
    """The test for a line that shows a survivor noticed the victim is gone."""

    def test(e: LogEvent) -> bool:
        if e.worker not in survivors:
            return False
        declared = e.event == "workers declared dead" and f"'{victim}'" in e.rest
        return declared or e.event == "leading"

    return test


def instance_times(
    events: list[LogEvent], after: float, moved: set[str], survivors: set[str]
) -> dict[str, dict[str, Any]]:
    """Per moved instance: when a survivor began opening it and when it started, with
    its open steps (the first start on a survivor after ``after``)."""
    found: dict[str, dict[str, Any]] = {}
    for e in events:
        instance = e.fields.get("instance", "")
        if e.at < after or e.worker not in survivors or instance not in moved:
            continue
        if e.logger != RUNTIME_LOGGER:
            continue
        entry = found.setdefault(instance, {"worker": e.worker})
        if e.event == "instance opening" and "opening" not in entry:
            entry["opening"] = e.at
        elif e.event == "instance started" and "started" not in entry:
            entry["started"] = e.at
            entry.update({step: float(e.fields[step]) for step in STEPS if step in e.fields})
    return found


def failover_phases(
    events: list[LogEvent],
    t0: float,
    victim: str,
    moved: set[str],
    running: float | None,
) -> dict[str, Any]:
    """The phases of one failover (seconds; None where a line is missing) and the
    details above. ``running`` is the bench's observed time from ``t0``."""
    survivors = {e.worker for e in events} - {victim}
    phases: dict[str, float | None] = dict.fromkeys(PHASES)
    detected = first(events, t0, gone(victim, survivors))
    if detected is None:
        return {"phases": phases}
    phases["detection"] = detected.at - t0
    planned = first(events, detected.at, lambda e: e.event == "assignments planned")
    if planned is None:
        return {"phases": phases}
    phases["plan"] = planned.at - detected.at
    passes = {
        w: first(
            events,
            planned.at,
            lambda e, w=w: (
                e.worker == w and e.event == "reconcile pass" and e.fields.get("starts", "0") != "0"
            ),
        )
        for w in sorted(survivors)
    }
    starts = instance_times(events, planned.at, moved, survivors)
    began = {w: p.at for w, p in passes.items() if p is not None} or first_openings(starts)
    started = [s["started"] for s in starts.values() if "started" in s]
    if began:
        phases["delivery"] = min(began.values()) - planned.at
    if began and started and len(started) == len(moved):
        phases["starting"] = max(started) - min(began.values())
        if running is not None:
            phases["observation"] = running - (max(started) - t0)
    return {
        "phases": phases,
        "survivors": survivor_details(began, starts, planned.at),
        "open": open_details(starts),
    }


def first_openings(starts: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Per survivor, when it began opening its first victim instance (for logs without
    "reconcile pass" lines: code before they were added)."""
    found: dict[str, float] = {}
    for entry in starts.values():
        if "opening" in entry:
            worker = entry["worker"]
            found[worker] = min(found.get(worker, entry["opening"]), entry["opening"])
    return found


def survivor_details(
    began: dict[str, float], starts: dict[str, dict[str, Any]], planned: float
) -> dict[str, dict[str, Any]]:
    """Per survivor: its pass began how long after the plan, how many victim instances
    it started, and how long from its pass to its last start."""
    details: dict[str, dict[str, Any]] = {}
    for worker, at in began.items():
        mine = [s["started"] for s in starts.values() if s["worker"] == worker and "started" in s]
        details[worker] = {
            "pass_after_plan_s": at - planned,
            "started": len(mine),
            "last_start_after_pass_s": (max(mine) - at) if mine else None,
        }
    return details


def open_details(starts: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The median of each instance's open time (``opening`` to ``started``) and of
    each of its steps, in ms."""
    opened = [s for s in starts.values() if "opening" in s and "started" in s]
    medians: dict[str, float | None] = {
        "open_ms": median([(s["started"] - s["opening"]) * 1000 for s in opened])
    }
    for step in STEPS:
        medians[step] = median([s[step] for s in opened if step in s])
    return medians


def fmt(value: float | None) -> str:
    """A time to 3 decimals, or a dash."""
    return "-" if value is None else f"{value:.3f}"


def median(values: list[float]) -> float | None:
    """The median, or None without values."""
    return statistics.median(values) if values else None


def phase_summary(trials: list[dict[str, Any]]) -> dict[str, float | None]:
    """The median of each phase (and each open step) over trials that have it."""
    summary: dict[str, float | None] = {}
    for phase in PHASES:
        summary[phase] = median(
            [t["phases"]["phases"][phase] for t in trials if t.get("phases")
             and t["phases"]["phases"][phase] is not None]
        )  # fmt: skip
    for key in ("open_ms", *STEPS):
        summary[key] = median(
            [t["phases"]["open"][key] for t in trials if t.get("phases", {}).get("open")
             and t["phases"]["open"].get(key) is not None]
        )  # fmt: skip
    return summary


def brief(result: dict[str, Any]) -> str:
    """One trial's times and phases, rounded, for the progress line."""
    phases = result["phases"].get("phases", {})
    return (
        f"reassigned {fmt(result['reassigned'])} running {fmt(result['running'])} s; phases "
        + " ".join(f"{p} {fmt(phases.get(p))}" for p in PHASES)
        + f"; open p50 {result['phases'].get('open', {}).get('open_ms')} ms"
    )


def print_phases(phases: dict[str, dict[str, float | None]]) -> None:
    """The p50 of each phase per scenario (s), and of each instance's open steps (ms)."""
    print(f"\nphases, p50 s: {'scenario':<8} " + " ".join(f"{p:>11}" for p in PHASES))
    for scenario, row in phases.items():
        print(f"{'':15}{scenario:<8} " + " ".join(f"{fmt(row[p]):>11}" for p in PHASES))
    print("instance open, p50 ms: " + "; ".join(
        f"{scenario}: open {fmt(row['open_ms'])} (load {fmt(row['load_ms'])}, ids "
        f"{fmt(row['ids_ms'])}, subscribe {fmt(row['subscribe_ms'])}, "
        f"output {fmt(row['output_ms'])})"
        for scenario, row in phases.items()
    ))  # fmt: skip
