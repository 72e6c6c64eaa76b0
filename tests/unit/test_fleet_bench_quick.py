"""The fleet benchmark's quick path, run as a function at tiny sizes: the facts it
checks hold (every worker observed exactly its assignments; only the dead workers'
instances moved). Timings are measured by the bench, never asserted here."""

from __future__ import annotations

from typing import Any

from bench.fleet_bench import Sizes, checks_pass, run_bench

TINY = Sizes(workers=12, functions=8, parallelism=3, kill=3, settle_timeout_s=20.0)


def rows_by_scenario(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (rows,) = report["runs"]
    return {row["scenario"].split()[0]: row for row in rows}


def test_every_worker_observes_exactly_its_assignments_and_only_dead_workers_move() -> None:
    unbatched = Sizes(workers=6, functions=4, parallelism=2, kill=0, settle_timeout_s=20.0)
    report = run_bench(TINY, 1, unbatched=unbatched, progress=False)
    rows = rows_by_scenario(report)
    assert set(rows) == {"0", "1", "2", "3", "2b"}

    placed = rows["1"]
    assert placed["live_workers"] == placed["workers_matching_leader"] == TINY.workers
    assert placed["instances_assigned"] == placed["instances_changed"] == TINY.instances
    assert placed["records_delivered"] == TINY.instances  # one record per instance, not x workers
    assert placed["max_per_worker"] - placed["min_per_worker"] <= 1

    live = TINY.workers
    for key, killed in (("2", TINY.kill), ("3", 1), ("2b", TINY.kill)):
        row = rows[key]
        live -= killed
        assert row["dead_workers"] == killed
        assert row["live_workers"] == row["workers_matching_leader"] == live
        assert row["instances_on_dead"] > 0
        assert row["only_dead_moved"] and row["moved"] == row["instances_on_dead"]
        assert row["instances_on_dead_workers"] == 0
        assert row["instances_assigned"] == TINY.instances
        assert row["records_delivered"] == row["moved"]

    one_by_one = report["unbatched"]["result"]
    assert one_by_one["workers_matching_leader"] == unbatched.workers
    assert one_by_one["instances_assigned"] == unbatched.instances
    assert report["checks_pass"]
    assert all(checks_pass(row, TINY) for row in report["runs"][0])
