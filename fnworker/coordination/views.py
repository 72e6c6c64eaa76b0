"""How a worker applies the metadata log and its own assignment log: pure,
idempotent folds (a record read twice changes nothing). No I/O.

Metadata: the first ``FunctionWrite`` of version current + 1 wins; every other
write of that version loses, on every worker alike.

Assignments: a record counts only if its term is at least the highest term this
worker knows (from ``TermStart`` records on its topic or from leases on the
coordinate topic). A ``Snapshot`` for this worker's session replaces the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fnworker.coordination.wire import (
    Assign,
    AssignmentRecord,
    FunctionWrite,
    Snapshot,
    TermStart,
    Unassign,
)
from fnworker.scheduler.model.records import Assignment, Fqfn, FunctionRecord, InstanceId


@dataclass
class MetadataView:
    """Every function, as the metadata log says."""

    functions: dict[Fqfn, FunctionRecord] = field(default_factory=dict)

    def apply(self, write: FunctionWrite) -> bool:
        """Apply a write if it is the next version of its function; True if it was."""
        current = self.functions.get(write.fqfn)
        if write.version != (current.version if current else 0) + 1:
            return False
        if write.record is None:
            del self.functions[write.fqfn]
        else:
            self.functions[write.fqfn] = write.record
        return True


@dataclass
class AssignmentView:
    """This worker's own assignments, fenced by term."""

    session: str
    term: int = 0
    held: dict[InstanceId, Assignment] = field(default_factory=dict)

    def learn_term(self, term: int) -> None:
        """A newer term seen elsewhere (a lease) fences older records here too."""
        self.term = max(self.term, term)

    def apply(
        self, record: AssignmentRecord
    ) -> tuple[tuple[Assignment, ...], tuple[InstanceId, ...]] | None:
        """Apply one record; the (assigned, unassigned) it causes, or None if fenced."""
        if isinstance(record, TermStart):
            self.learn_term(record.term)
            return None
        if isinstance(record, Snapshot):
            return self.apply_snapshot(record)
        term = record.assignment.term if isinstance(record, Assign) else record.term
        if term < self.term:
            return None
        self.term = term
        if isinstance(record, Assign):
            self.held[record.assignment.instance] = record.assignment
            return (record.assignment,), ()
        assert isinstance(record, Unassign)
        return ((), (record.instance,)) if self.held.pop(record.instance, None) else None

    def apply_snapshot(
        self, snapshot: Snapshot
    ) -> tuple[tuple[Assignment, ...], tuple[InstanceId, ...]] | None:
        """Replace the table with a snapshot meant for this session."""
        if snapshot.session != self.session or snapshot.term < self.term:
            return None
        self.term = snapshot.term
        new = {a.instance: a for a in snapshot.assignments}
        gone = tuple(i for i in self.held if i not in new)
        self.held = new
        return snapshot.assignments, gone

    def drop_all(self) -> tuple[InstanceId, ...]:
        """Forget everything (this worker was fenced out); the instances to stop."""
        gone = tuple(self.held)
        self.held = {}
        return gone
