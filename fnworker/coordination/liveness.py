"""Which workers are alive, as the leader sees it from heartbeats. No I/O and no
clock of its own: time comes in as an argument. Mutable on purpose (like the
placement index): a heartbeat costs O(1), not a copy of the whole table.

A worker is live while its last heartbeat is younger than the dead timeout. A
``Leaving`` record removes it at once. A heartbeat with a new ``session`` means
the worker process restarted (same id): it stays a member and is reported as
restarted, so the leader re-sends its assignments instead of re-planning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fnworker.scheduler.model.records import WorkerInfo


@dataclass
class Seen:
    """The last heartbeat of one worker and when it arrived."""

    worker: WorkerInfo
    session: str
    at: float


@dataclass
class LivenessTable:
    """Last heartbeat by worker id."""

    seen: dict[str, Seen] = field(default_factory=dict)

    def heartbeat(self, worker: WorkerInfo, session: str, now: float) -> bool:
        """Record a heartbeat; True when it starts a new session of the worker."""
        previous = self.seen.get(worker.worker_id)
        if previous is not None and previous.session in (session, ""):
            previous.at, previous.worker, previous.session = now, worker, session
            return False
        self.seen[worker.worker_id] = Seen(worker=worker, session=session, at=now)
        return True

    def leaving(self, worker_id: str, session: str) -> bool:
        """Forget a worker that left cleanly; True if it was known with that session."""
        previous = self.seen.get(worker_id)
        if previous is None or previous.session != session:
            return False
        del self.seen[worker_id]
        return True

    def expect(self, workers: tuple[WorkerInfo, ...], now: float) -> None:
        """A new leader's start: the last lease's members count as just heard from.

        Their first heartbeat then fills in the session without counting as a new
        one: what they hold came in their reports, so no snapshot is needed."""
        for worker in workers:
            self.seen.setdefault(worker.worker_id, Seen(worker=worker, session="", at=now))

    def live(self, now: float, dead_timeout: float) -> tuple[WorkerInfo, ...]:
        """Workers heard from within ``dead_timeout``, ordered by id."""
        return tuple(
            seen.worker for _, seen in sorted(self.seen.items()) if now - seen.at < dead_timeout
        )

    def session_of(self, worker_id: str) -> str | None:
        """The session of a worker's last heartbeat."""
        seen = self.seen.get(worker_id)
        return seen.session if seen else None
