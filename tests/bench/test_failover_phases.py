"""The failover bench's phase breakdown, from log lines in the workers' format: the
phases add up to the observed time, and the log tail sees only lines appended after
it began. Timings are measured by the bench, never asserted here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.failover_phases import (
    PHASES,
    StartedTail,
    failover_phases,
    parse_line,
    read_events,
)

T0 = datetime(2026, 12, 4, 6, 0, 0, tzinfo=UTC).timestamp()


def line(at: float, logger: str, event: str, rest: str = "") -> str:
    """One log line as the workers write it (structlog's key=value renderer)."""
    stamp = datetime.fromtimestamp(T0 + at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"timestamp='{stamp}' level='info' logger='{logger}' event='{event}' {rest}".strip()


def started(at: float, instance: str) -> str:
    return line(
        at,
        "fnworker.runtime.thread",
        "instance started",
        f"instance='{instance}' version=1 load_ms=1.0 ids_ms=2.0 subscribe_ms=3.0 output_ms=4.0",
    )


def opening(at: float, instance: str) -> str:
    return line(at, "fnworker.runtime.thread", "instance opening", f"instance='{instance}'")


def test_the_phases_add_up_to_the_observed_time(tmp_path: Path) -> None:
    moved = {"public/default/a:0", "public/default/b:0"}
    logs = {"w1": tmp_path / "w1.log", "w2": tmp_path / "w2.log", "w3": tmp_path / "w3.log"}
    logs["w3"].write_text(line(-0.2, "fnworker.worker", "reconcile pass", "starts=9") + "\n")
    logs["w1"].write_text(
        "\n".join(
            [
                line(0.9, "fnworker.coordination", "workers declared dead", "workers=('w3',)"),
                line(0.91, "fnworker.worker", "assignments planned", "reasons={'worker_lost': 2}"),
                line(0.93, "fnworker.worker", "reconcile pass", "starts=1 replaces=0 stops=0"),
                opening(0.94, "public/default/a:0"),
                started(1.0, "public/default/a:0"),
                "not a structured line",
            ]
        )
    )
    logs["w2"].write_text(
        "\n".join(
            [
                line(0.95, "fnworker.worker", "reconcile pass", "starts=1 replaces=0 stops=0"),
                opening(0.96, "public/default/b:0"),
                started(1.2, "public/default/b:0"),
            ]
        )
    )
    events = read_events(logs, T0 - 0.5, T0 + 5)
    result = failover_phases(events, T0, "w3", moved, running=1.25)
    phases = result["phases"]
    assert phases == pytest.approx(
        {"detection": 0.9, "plan": 0.01, "delivery": 0.02, "starting": 0.27, "observation": 0.05},
        abs=1e-3,
    )
    assert sum(phases[p] for p in PHASES) == pytest.approx(1.25, abs=1e-3)
    assert result["survivors"]["w2"]["started"] == 1
    assert result["open"]["open_ms"] == pytest.approx(150.0, abs=0.1)
    assert result["open"]["subscribe_ms"] == 3.0


def test_a_missing_step_leaves_the_later_phases_open(tmp_path: Path) -> None:
    log = tmp_path / "w1.log"
    log.write_text(line(0.9, "fnworker.coordination", "workers declared dead", "workers=('w3',)"))
    events = read_events({"w1": log}, T0, T0 + 5)
    phases = failover_phases(events, T0, "w3", {"x:0"}, running=None)["phases"]
    assert phases["detection"] == pytest.approx(0.9, abs=1e-3)
    assert [phases[p] for p in PHASES[1:]] == [None] * 4


def test_the_tail_sees_only_starts_appended_after_it_began(tmp_path: Path) -> None:
    log = tmp_path / "w1.log"
    log.write_text(started(0.1, "public/default/old:0") + "\n")
    tail = StartedTail({"w1": log})
    wanted = {"public/default/a:0", "public/default/old:0"}
    with log.open("a") as out:
        out.write(
            started(1.0, "public/default/a:0") + "\n" + started(1.1, "public/default/old")[:40]
        )
    assert not tail.all_started(wanted)
    assert tail.started == {"public/default/a:0"}
    assert parse_line("w1", "plain text") is None
