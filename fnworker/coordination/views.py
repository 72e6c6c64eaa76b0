"""How a worker applies the metadata log: a pure, idempotent fold (a record read
twice changes nothing). No I/O. (Its own assignment log: protocol/own_assignments.py.)

Metadata: the first ``FunctionWrite`` of version current + 1 wins; every other
write of that version loses, on every worker alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fnworker.coordination.wire import (
    FunctionWrite,
)
from fnworker.scheduler.model.records import Fqfn, FunctionRecord


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
