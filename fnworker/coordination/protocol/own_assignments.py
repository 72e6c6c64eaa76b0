"""How a worker applies its own assignment topic: a pure, idempotent fold (a
record read twice changes nothing), fenced by term. No I/O.

A record counts only if its term is at least the highest term this worker knows
(from ``TermStart`` records on its topic or from leases on the coordinate topic).
A ``Snapshot`` for this worker's session replaces the table.
"""

from __future__ import annotations

import immutables
import msgspec

from fnworker.coordination.wire import Assign, AssignmentRecord, Snapshot, TermStart, Unassign
from fnworker.scheduler.model.records import Assignment, InstanceId

Change = tuple[tuple[Assignment, ...], tuple[InstanceId, ...]]
"""What applying a record changed: (assigned, unassigned)."""

NOTHING: immutables.Map[InstanceId, Assignment] = immutables.Map()


class OwnAssignments(msgspec.Struct, frozen=True, kw_only=True):
    """This worker's own assignments under ``session``, fenced by ``term``."""

    session: str
    term: int = 0
    held: immutables.Map[InstanceId, Assignment] = NOTHING

    def learn_term(self, term: int) -> OwnAssignments:
        """A newer term seen elsewhere (a lease) fences older records here too."""
        return self if term <= self.term else msgspec.structs.replace(self, term=term)

    def apply(self, record: AssignmentRecord) -> tuple[OwnAssignments, Change | None]:
        """The view after one record, and what it changed (None: fenced or no change)."""
        if isinstance(record, TermStart):
            return self.learn_term(record.term), None
        if isinstance(record, Snapshot):
            return self.apply_snapshot(record)
        term = record.assignment.term if isinstance(record, Assign) else record.term
        if term < self.term:
            return self, None
        if isinstance(record, Assign):
            held = self.held.set(record.assignment.instance, record.assignment)
            return self.replace(term, held), ((record.assignment,), ())
        assert isinstance(record, Unassign)
        if record.instance not in self.held:
            return self.replace(term, self.held), None
        return self.replace(term, self.held.delete(record.instance)), ((), (record.instance,))

    def apply_snapshot(self, snapshot: Snapshot) -> tuple[OwnAssignments, Change | None]:
        """Replace the table with a snapshot meant for this session."""
        if snapshot.session != self.session or snapshot.term < self.term:
            return self, None
        new = immutables.Map({a.instance: a for a in snapshot.assignments})
        gone = tuple(i for i in self.held if i not in new)
        return self.replace(snapshot.term, new), (snapshot.assignments, gone)

    def replace(self, term: int, held: immutables.Map[InstanceId, Assignment]) -> OwnAssignments:
        """A copy with ``term`` and ``held``."""
        return OwnAssignments(session=self.session, term=term, held=held)

    def dropped(self, session: str) -> tuple[OwnAssignments, tuple[InstanceId, ...]]:
        """Forget everything (this worker fenced itself) and start ``session``; the
        instances to stop."""
        return OwnAssignments(session=session, term=self.term), tuple(self.held)
