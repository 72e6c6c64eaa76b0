"""Every scenario script in tests/protocol/scenarios/ runs against the pure
protocol of several simulated workers (tests/protocol/script.py says the format)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.protocol.script import Runner

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.txt"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    Runner().run(path)
