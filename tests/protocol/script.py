"""Runs a scenario script (tests/protocol/scenarios/*.txt) against ``Sim``: one
command per line, ``#`` starts a comment. docs/coordination.md lists the commands.

    start w1 w2 w3                  # workers join cluster east (or: cluster=west)
    function f parallelism=6        # a function the leaders place
    advance 2s                      # time passes (ms or s); ticks, deliveries, plans
    advance 300ms hold              # ... ticks only: nothing is delivered
    deliver                         # deliver everything deliverable now
    freeze w1 / thaw w1             # SIGSTOP / SIGCONT
    kill w1 / stop w1 / restart w1  # SIGKILL / clean stop / start again, same id
    handoff w1 [timeout=3s]         # graceful stop (SIGTERM): hand over, then stop
    delay w2 runtime / release w2 runtime  # w2's runtime does not run what it gets
    partition w1 | w2 w3 / heal     # the left side loses the broker
    delay w2 coordinate / release w2 coordinate   # a reader stalls, then catches up
    drop w1 heartbeats / release w1 heartbeats    # what w1 publishes there is lost
    rebalance cap=1 interval=2s cooldown=30s settle=1s spread=2 ratio=0.2 periodic=10s on_join=off
                                    # the leaders' automatic rebalance settings (others
                                    # keep the shipped defaults; periodic=0s: off)
    mark                            # remember who holds what (for `expect unmoved`)
                                    # and start counting moves (for `expect moved`)
    expect leader=w1 term=2         # every running worker of east agrees
    expect w3 leader=w1 term=2      # one worker's view
    expect owner f:0=w2 f:1=none    # exactly these running workers hold them
    expect unmoved                  # every instance held at `mark` by a worker still
                                    # running is held by that worker alone
    expect count w1=2 w2=2 w3=2     # how many instances each running worker holds
    expect moved join=2 rebalance=0 # moves published since `mark`, by reason
    expect claims w2=0 / expect fences w2=1 / expect quiet
"""

from __future__ import annotations

import shlex
from pathlib import Path

import msgspec

from tests.protocol.sim import Sim, instance


def seconds(text: str) -> float:
    """``300ms`` or ``2s`` or ``1.5s`` in seconds."""
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    raise ValueError(f"a duration ends in ms or s, not {text!r}")


def options(words: list[str]) -> tuple[list[str], dict[str, str]]:
    """Split ``a b key=value`` into positional words and options."""
    plain = [w for w in words if "=" not in w]
    named = dict(w.split("=", 1) for w in words if "=" in w)
    return plain, named


class ScenarioFailed(AssertionError):
    """An ``expect`` did not hold (or a command could not run)."""


class Runner:
    """Executes one script's commands in order."""

    def __init__(self) -> None:
        self.sim = Sim()
        self.marked: dict[str, set[str]] = {}
        self.moves_at_mark = 0

    def run(self, path: Path) -> None:
        """Run every line of ``path``; fail naming the line."""
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            words = shlex.split(line, comments=True)
            if not words:
                continue
            try:
                self.command(words[0], words[1:])
            except AssertionError as error:
                raise ScenarioFailed(f"{path.name}:{number}: {line.strip()}\n  {error}") from None

    def command(self, name: str, args: list[str]) -> None:
        """Run one command."""
        sim = self.sim
        plain, named = options(args)
        cluster = named.get("cluster", "east")
        if name == "start":
            for worker in plain:
                sim.start(worker, cluster)
        elif name == "restart":
            for worker in plain:
                old = sim.workers.get(worker)
                if old is not None:
                    cluster = old.cluster
                    sim.kill(worker)
                sim.start(worker, cluster)
        elif name == "function":
            sim.add_function(plain[0], int(named.get("parallelism", "1")), cluster)
        elif name == "advance":
            sim.advance(seconds(plain[0]), deliver="hold" not in plain)
        elif name == "deliver":
            sim.deliver_all()
        elif name in ("freeze", "thaw"):
            for worker in plain:
                sim.workers[worker].frozen = name == "freeze"
        elif name in ("kill", "stop"):
            for worker in plain:
                (sim.kill if name == "kill" else sim.stop)(worker)
        elif name == "handoff":
            for worker in plain:
                sim.hand_off(worker, seconds(named.get("timeout", "3s")))
        elif name == "release" and plain[1:] == ["runtime"]:
            sim.delayed.discard((plain[0], "runtime"))
            sim.run_handed_over(sim.workers[plain[0]])
        elif name == "partition":
            sim.partition(plain[: plain.index("|")])
        elif name == "heal":
            sim.heal()
        elif name in ("delay", "drop"):
            (sim.delayed if name == "delay" else sim.dropped).add((plain[0], plain[1]))
        elif name == "release":
            sim.delayed.discard((plain[0], plain[1]))
            sim.dropped.discard((plain[0], plain[1]))
        elif name == "mark":
            self.marked = {w.name: set(w.state.mine.held) for w in sim.running()}
            self.moves_at_mark = len(sim.moves)
        elif name == "rebalance":
            self.set_policy(named)
        elif name == "expect":
            self.expect(plain, named)
        else:
            raise ScenarioFailed(f"unknown command {name!r}")

    def expect(self, plain: list[str], named: dict[str, str]) -> None:
        """Check one expectation."""
        sim = self.sim
        cluster = named.get("cluster", "east")
        if "leader" in named or "term" in named:
            viewers = [sim.workers[plain[0]]] if plain else sim.running(cluster)
            for viewer in viewers:
                self.expect_view(viewer.name, named)
        elif plain and plain[0] == "owner":
            for short, wanted in named.items():
                want = set() if wanted == "none" else set(wanted.split(","))
                got = sim.owners(short)
                assert got == want, f"{short} is held by {sorted(got)}, expected {sorted(want)}"
        elif plain and plain[0] in ("claims", "fences"):
            for worker, count in named.items():
                got = getattr(sim.workers[worker], plain[0])
                assert got == int(count), f"{worker} {plain[0]}: {got}, expected {count}"
        elif plain == ["unmoved"]:
            for worker, held in self.marked.items():
                for instance_id in held:
                    if worker in sim.workers and not sim.workers[worker].frozen:
                        got = sim.owners(instance_id)
                        assert got == {worker}, f"{instance_id} moved from {worker} to {got}"
        elif plain == ["count"]:
            for worker, count in named.items():
                got = len(sim.workers[worker].state.mine.held)
                assert got == int(count), f"{worker} holds {got} instances, expected {count}"
        elif plain == ["moved"]:
            since = [move.reason for _, move in sim.moves[self.moves_at_mark :]]
            for reason, count in named.items():
                got = since.count(reason)  # type: ignore[arg-type]
                assert got == int(count), f"{got} {reason} moves since mark, expected {count}"
        elif plain == ["quiet"]:
            sim.check_quiet()
        else:
            raise ScenarioFailed(f"unknown expectation {plain} {named}")

    def set_policy(self, named: dict[str, str]) -> None:
        """Change the automatic rebalance settings named on a ``rebalance`` line."""
        fields = {
            "cap": ("max_moves", int),
            "interval": ("min_interval_s", seconds),
            "cooldown": ("cooldown_s", seconds),
            "settle": ("settle_s", seconds),
            "spread": ("min_spread", int),
            "ratio": ("min_ratio", float),
            "periodic": ("check_every_s", seconds),
            "on_join": ("on_join", lambda text: text == "on"),
        }
        changes = {fields[key][0]: fields[key][1](value) for key, value in named.items()}
        self.sim.policy = msgspec.structs.replace(self.sim.policy, **changes)

    def expect_view(self, name: str, named: dict[str, str]) -> None:
        """One worker's view of leader and term."""
        from fnworker.coordination.protocol import membership_of

        state = self.sim.workers[name].state
        view = membership_of(state)
        if "leader" in named:
            leader = view.leader.worker_id if view.leader else "none"
            assert leader == named["leader"], f"{name} sees leader {leader}"
        if "term" in named:
            assert view.term == int(named["term"]), f"{name} sees term {view.term}"


__all__ = ["Runner", "instance"]
