"""The fleet protocol copes with heartbeats read by the leader alone (issue 15 point
4, part A): every scenario script of tests/protocol/scenarios/ runs again with a
simulated fleet whose workers read the heartbeats topic only while
``reader_needs.reads_heartbeats`` says so, as the pulsar backend does: a worker
that does not want the topic reads nothing of it, and one that starts wanting it
reads from the topic's end on (a reader opened at ``latest``), so every heartbeat
or ``Leaving`` written before then is missed. The scenarios' expectations (one
leader, failover, dead workers detected, clean stops, restarts, partitions,
rebalancing) hold all the same. Pure; the simulation is tests/protocol/sim.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from fnworker.coordination.protocol import Topic
from fnworker.coordination.reader_needs import reads_heartbeats
from tests.protocol.script import Runner
from tests.protocol.sim import Sim

SCENARIOS = sorted((Path(__file__).parents[1] / "protocol" / "scenarios").glob("*.txt"))


class LeaderReadsHeartbeats(Sim):
    """``Sim`` whose workers read heartbeats only while their state wants them."""

    skipped: int = 0
    """Heartbeat-topic records no worker read because it did not want them."""

    def deliver_round(self) -> bool:
        """Before each round, a worker that does not want the heartbeats topic skips
        to its end (its reader is closed; when it opens, it starts at the end)."""
        for worker in self.running():
            if not reads_heartbeats(worker.state):
                key = self.key(worker.cluster, Topic(kind="heartbeats"))
                self.skipped += len(self.log(key)) - worker.cursors[key]
                worker.cursors[key] = len(self.log(key))
        return super().deliver_round()


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_holds_with_leader_only_heartbeats(path: Path) -> None:
    runner = Runner()
    runner.sim = sim = LeaderReadsHeartbeats()
    runner.run(path)
    assert sim.skipped > 0, "no worker ever skipped a heartbeat: the model is not in effect"
