"""The phases of one supervised instance process and the legal moves between them:
a pure transition table, plus the one thread-safe cell through which the supervisor
changes phase (and error). No I/O.

The supervisor thread moves the phase; the event loop reads it (``status()``) and a
metrics reset may note an error from another thread, so every read and write goes
through ``PhaseCell`` under one lock, and a move the table does not allow raises
``IllegalTransition`` instead of silently leaving the status wrong.

The life of one instance: STARTING -> RUNNING -> (the process ends) BACKING_OFF ->
STARTING -> ...; a package that does not load goes to FAILED (never restarted); a
stop goes through STOPPING (a process was running) or directly to STOPPED, which is
terminal. ``LEGAL_MOVES`` is the whole table; docs/process-runtime.md shows it.
"""

from __future__ import annotations

import enum
import threading
from typing import Final


class Phase(enum.Enum):
    """Where one supervised instance is in its life."""

    STARTING = "starting"
    """A process is being spawned or has not answered ``Started`` yet."""
    RUNNING = "running"
    """The process said ``Started``; the supervisor polls it."""
    BACKING_OFF = "backing-off"
    """The process ended; the supervisor waits before the next spawn."""
    FAILED = "failed"
    """Not restarted (a package that does not load, or supervision itself failed)."""
    STOPPING = "stopping"
    """A stop was requested while a process ran: SIGTERM, grace, SIGKILL."""
    STOPPED = "stopped"
    """Supervision ended; terminal."""


LEGAL_MOVES: Final[dict[Phase, frozenset[Phase]]] = {
    Phase.STARTING: frozenset(
        {Phase.RUNNING, Phase.BACKING_OFF, Phase.FAILED, Phase.STOPPING, Phase.STOPPED}
    ),
    Phase.RUNNING: frozenset({Phase.BACKING_OFF, Phase.FAILED, Phase.STOPPING, Phase.STOPPED}),
    Phase.BACKING_OFF: frozenset({Phase.STARTING, Phase.FAILED, Phase.STOPPED}),
    Phase.FAILED: frozenset({Phase.STOPPED}),
    Phase.STOPPING: frozenset({Phase.FAILED, Phase.STOPPED}),
    Phase.STOPPED: frozenset(),
}
"""Every legal move, from -> to. A phase never moves to itself."""


class IllegalTransition(RuntimeError):
    """The supervisor tried a move the phase table does not allow (a bug, not an input)."""


def transition(current: Phase, target: Phase) -> Phase:
    """``target`` if moving there from ``current`` is legal; else IllegalTransition."""
    if target not in LEGAL_MOVES[current]:
        raise IllegalTransition(
            f"an instance process cannot move from {current.value} to {target.value}; "
            f"from {current.value} it may move to "
            f"{', '.join(sorted(p.value for p in LEGAL_MOVES[current])) or 'nothing'}"
        )
    return target


class PhaseCell:
    """The current phase and error of one instance, changed only through ``move``."""

    def __init__(self, phase: Phase = Phase.STARTING, error: str = "") -> None:
        self._lock = threading.Lock()
        self._phase = phase
        self._error = error

    @property
    def phase(self) -> Phase:
        """The current phase."""
        with self._lock:
            return self._phase

    @property
    def error(self) -> str:
        """The current error sentence (empty: none)."""
        with self._lock:
            return self._error

    def snapshot(self) -> tuple[Phase, str]:
        """Phase and error, read together."""
        with self._lock:
            return self._phase, self._error

    def move(self, target: Phase, error: str | None = None) -> None:
        """Move to ``target`` (IllegalTransition if the table forbids it), and set the
        error when one is given."""
        with self._lock:
            self._phase = transition(self._phase, target)
            if error is not None:
                self._error = error

    def note_error(self, error: str) -> None:
        """Set the error without changing phase (the instance said why it is exiting)."""
        with self._lock:
            self._error = error
