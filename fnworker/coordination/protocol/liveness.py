"""Which workers are alive, as the leader sees it from heartbeats: a frozen table
folded one heartbeat at a time. No I/O and no clock: time comes in as an argument.
The table is an immutable hash map, so a heartbeat costs O(log n), not a copy.

A worker is live while its last heartbeat is younger than the dead timeout. A
``Leaving`` record removes it at once. A heartbeat with a new ``session`` means
the worker process restarted (same id): it stays a member and is reported as
restarted, so the leader re-sends its assignments instead of re-planning.
"""

from __future__ import annotations

from collections.abc import Mapping

import immutables
import msgspec

from fnworker.scheduler.model.records import WorkerInfo


class Seen(msgspec.Struct, frozen=True, kw_only=True):
    """The last heartbeat of one worker and when it arrived."""

    worker: WorkerInfo
    session: str
    at: float
    handing_off: bool = False
    """Its last heartbeat said it is handing its instances off (a graceful stop)."""


EMPTY: immutables.Map[str, Seen] = immutables.Map()


class LivenessTable(msgspec.Struct, frozen=True, kw_only=True):
    """Last heartbeat by worker id."""

    seen: immutables.Map[str, Seen] = EMPTY

    def heartbeat(
        self, worker: WorkerInfo, session: str, now: float, handing_off: bool = False
    ) -> tuple[LivenessTable, bool]:
        """The table after a heartbeat, and True when it starts a new session."""
        previous = self.seen.get(worker.worker_id)
        fresh = previous is None or previous.session not in (session, "")
        seen = Seen(worker=worker, session=session, at=now, handing_off=handing_off)
        return LivenessTable(seen=self.seen.set(worker.worker_id, seen)), fresh

    def leaving(self, worker_id: str, session: str) -> LivenessTable | None:
        """The table without a worker that left cleanly; None unless known with that session."""
        previous = self.seen.get(worker_id)
        if previous is None or previous.session != session:
            return None
        return LivenessTable(seen=self.seen.delete(worker_id))

    def expect(
        self,
        workers: tuple[WorkerInfo, ...],
        now: float,
        sessions: Mapping[str, str] | None = None,
    ) -> LivenessTable:
        """A new leader's start: the last lease's members count as just heard from,
        in the session their report named (``sessions``; unknown: "").

        A heartbeat of that session (or the first one, when unknown) is not a new
        session: what they hold came in their reports. A heartbeat of another
        session is (a restart the report did not see), and gets a snapshot."""
        known = sessions or {}
        seen = self.seen.mutate()
        for worker in workers:
            if worker.worker_id not in seen:
                session = known.get(worker.worker_id, "")
                seen[worker.worker_id] = Seen(worker=worker, session=session, at=now)
        return LivenessTable(seen=seen.finish())

    def reported(self, worker_id: str, session: str) -> LivenessTable:
        """A report named the session of a worker whose session was unknown."""
        previous = self.seen.get(worker_id)
        if previous is None or previous.session:
            return self
        updated = msgspec.structs.replace(previous, session=session)
        return LivenessTable(seen=self.seen.set(worker_id, updated))

    def heard_all(self, now: float) -> LivenessTable:
        """Every known worker counts as just heard from (this leader was frozen, so
        their silence says nothing); sessions are kept."""
        seen = self.seen.mutate()
        for worker_id, previous in self.seen.items():
            seen[worker_id] = msgspec.structs.replace(previous, at=now)
        return LivenessTable(seen=seen.finish())

    def live(self, now: float, dead_timeout: float) -> tuple[WorkerInfo, ...]:
        """Workers heard from within ``dead_timeout``, ordered by id."""
        return tuple(
            seen.worker for _, seen in sorted(self.seen.items()) if now - seen.at < dead_timeout
        )

    def handing_off(self, now: float, dead_timeout: float) -> frozenset[str]:
        """Live workers whose last heartbeat said they hand their instances off."""
        return frozenset(
            worker_id
            for worker_id, seen in self.seen.items()
            if seen.handing_off and now - seen.at < dead_timeout
        )

    def session_of(self, worker_id: str) -> str | None:
        """The session of a worker's last heartbeat."""
        seen = self.seen.get(worker_id)
        return seen.session if seen else None
