"""The events a coordination backend reports to its worker, the fleet view they
carry, and the error of a lost metadata write. Pure data, no I/O."""

from __future__ import annotations

import msgspec

from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    WorkerInfo,
)


class VersionConflict(Exception):
    """A metadata write lost: the stored version is not the one the writer expected."""

    def __init__(self, fqfn: str, expected: int, actual: int) -> None:
        super().__init__(
            f"function {fqfn} changed concurrently: expected version {expected}, "
            f"found {actual}; reload it and try again"
        )
        self.fqfn = fqfn
        self.expected = expected
        self.actual = actual


class MembershipView(msgspec.Struct, frozen=True, kw_only=True):
    """Who is in the fleet and who leads it, as of leadership ``term``."""

    term: int
    leader: WorkerInfo | None
    members: tuple[WorkerInfo, ...]
    handing_off: tuple[str, ...] = ()
    """Members handing their instances off before they stop (the leader's view only):
    still members, but nothing is placed on them."""


class FunctionsChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Functions were created or updated (``changed``) or deleted (``deleted``)."""

    changed: tuple[FunctionRecord, ...] = ()
    deleted: tuple[Fqfn, ...] = ()


class MembershipChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The live membership or the leader changed."""

    view: MembershipView


class AssignmentsChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """This worker's own assignments changed under leadership ``term``."""

    term: int
    assigned: tuple[Assignment, ...] = ()
    unassigned: tuple[InstanceId, ...] = ()


CoordinationEvent = FunctionsChanged | MembershipChanged | AssignmentsChanged
