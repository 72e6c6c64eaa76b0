"""The supervisor's phase machine (fnworker/runtimes/process/phases.py): every legal
move is taken, every other move is refused with a sentence, and the cell is safe to
use from several threads."""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnworker.runtimes.process.phases import (
    LEGAL_MOVES,
    IllegalTransition,
    Phase,
    PhaseCell,
    transition,
)

LEGAL = [
    (Phase.STARTING, Phase.RUNNING),
    (Phase.STARTING, Phase.BACKING_OFF),
    (Phase.STARTING, Phase.FAILED),
    (Phase.STARTING, Phase.STOPPING),
    (Phase.STARTING, Phase.STOPPED),
    (Phase.RUNNING, Phase.BACKING_OFF),
    (Phase.RUNNING, Phase.FAILED),
    (Phase.RUNNING, Phase.STOPPING),
    (Phase.RUNNING, Phase.STOPPED),
    (Phase.BACKING_OFF, Phase.STARTING),
    (Phase.BACKING_OFF, Phase.FAILED),
    (Phase.BACKING_OFF, Phase.STOPPED),
    (Phase.FAILED, Phase.STOPPED),
    (Phase.STOPPING, Phase.FAILED),
    (Phase.STOPPING, Phase.STOPPED),
]
ILLEGAL = [pair for pair in itertools.product(Phase, Phase) if pair not in LEGAL]


@pytest.mark.parametrize(("current", "target"), LEGAL)
def test_a_legal_move_is_taken(current: Phase, target: Phase) -> None:
    assert transition(current, target) is target
    cell = PhaseCell(current)
    cell.move(target, "why")
    assert cell.snapshot() == (target, "why")


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_an_illegal_move_is_refused_and_changes_nothing(current: Phase, target: Phase) -> None:
    cell = PhaseCell(current, "before")
    with pytest.raises(IllegalTransition) as refused:
        cell.move(target, "after")
    assert cell.snapshot() == (current, "before")
    assert f"from {current.value} to {target.value}" in str(refused.value)


def test_the_table_is_exactly_the_documented_moves() -> None:
    table = {(a, b) for a, targets in LEGAL_MOVES.items() for b in targets}
    assert table == set(LEGAL)
    assert set(LEGAL_MOVES) == set(Phase)


def test_stopped_is_terminal_and_every_other_phase_can_stop() -> None:
    assert LEGAL_MOVES[Phase.STOPPED] == frozenset()
    assert all(Phase.STOPPED in LEGAL_MOVES[p] for p in Phase if p is not Phase.STOPPED)


def test_failed_is_left_only_by_stopping() -> None:
    """A package that does not load is never restarted by the supervisor."""
    assert LEGAL_MOVES[Phase.FAILED] == frozenset({Phase.STOPPED})


@given(st.lists(st.sampled_from(list(Phase)), max_size=30))
def test_any_sequence_of_moves_follows_the_table(targets: list[Phase]) -> None:
    cell = PhaseCell()
    for target in targets:
        before = cell.phase
        try:
            cell.move(target)
        except IllegalTransition:
            assert target not in LEGAL_MOVES[before] and cell.phase is before
        else:
            assert target in LEGAL_MOVES[before] and cell.phase is target


def test_note_error_keeps_the_phase() -> None:
    cell = PhaseCell(Phase.RUNNING)
    cell.note_error("the instance is exiting")
    assert cell.snapshot() == (Phase.RUNNING, "the instance is exiting")


def test_concurrent_moves_never_take_an_illegal_path() -> None:
    """Threads racing STARTING -> RUNNING: exactly one wins, the others are refused."""
    cell = PhaseCell(Phase.STARTING)
    barrier = threading.Barrier(8)
    outcomes: list[bool] = []

    def race() -> None:
        barrier.wait()
        try:
            cell.move(Phase.RUNNING)
        except IllegalTransition:
            outcomes.append(False)
        else:
            outcomes.append(True)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 7 + [True]
    assert cell.phase is Phase.RUNNING
