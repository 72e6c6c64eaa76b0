"""The fleet benchmark at a tiny size, run as a function: on the real protocol every
scenario converges (leader, placement, every worker holding exactly its part), the
killed workers' instances move and a joiner gets instances. Timings are measured by
the bench, never asserted here."""

from __future__ import annotations

from typing import Any

from bench.fleet_bench import run_size


def rows_by_scenario(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["scenario"].split()[0]: row for row in result["results"]}


def test_every_scenario_converges_on_the_real_protocol() -> None:
    result = run_size(10, 10, 0.5, lambda _: None)
    rows = rows_by_scenario(result)
    assert {"0", "1", "2", "3", "4", "5", "6", "6b"} <= set(rows)
    for key in ("0", "1", "2", "3", "4", "5"):
        times = rows[key]["times_s"]
        assert all(value is not None for value in times.values()), (key, times)
    for key in ("2", "3", "4"):
        assert rows[key]["moved"] > 0
    assert rows["5"]["new_count"] > 0
