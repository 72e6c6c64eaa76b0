"""The records the pulsar coordination backend writes on its topics, and their
codec (msgpack through msgspec). Pure data, no I/O.

Topics of one cluster, all under ``persistent://{pulsarFunctionsNamespace}/``:

- ``{clusterCoordinationTopicName}``: ``Claim`` and ``Lease`` (leadership terms) and
  ``Report`` (what a worker holds, sent once per new term).
- ``{clusterCoordinationTopicName}-heartbeats``: ``Heartbeat``, ``Leaving`` and
  ``Running`` (a graceful stop's hand-off, docs/coordination.md).
- ``{functionMetadataTopicName}``: ``FunctionWrite`` (versioned function records).
- ``{functionAssignmentTopicName}-{worker}``: ``TermStart``, ``Assign``,
  ``Unassign`` and ``Snapshot`` for one worker only.
- ``{functionMetadataTopicName}-packages``: ``PackageChunk`` (function code, uploads).
- ``{functionMetadataTopicName}-uploads``: ``UploadRecord`` (coordination/uploads.py).
"""

from __future__ import annotations

import msgspec

from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    WorkerInfo,
)


class Claim(msgspec.Struct, frozen=True, kw_only=True, tag="claim"):
    """A candidate asks to lead ``term``; the first claim for a new term in log order wins."""

    term: int
    candidate: WorkerInfo
    process: str = ""
    """The candidate's process (a restarted worker keeps its id, not its process)."""


class Lease(msgspec.Struct, frozen=True, kw_only=True, tag="lease"):
    """The leader of ``term`` is alive and sees ``members`` as the live fleet."""

    term: int
    leader: WorkerInfo
    members: tuple[WorkerInfo, ...]
    seq: int
    process: str = ""
    """The leader's process: a lease of the same id from another process is not its."""


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, tag="heartbeat"):
    """A worker is alive; ``session`` changes on every start of the process."""

    worker: WorkerInfo
    session: str
    seq: int
    handing_off: bool = False
    """The worker is stopping gracefully: place nothing on it, move what it holds
    (it keeps running each instance until the new owner runs it)."""


class Leaving(msgspec.Struct, frozen=True, kw_only=True, tag="leaving"):
    """A worker shuts down cleanly; its instances can move at once."""

    worker_id: str
    session: str


class Report(msgspec.Struct, frozen=True, kw_only=True, tag="report"):
    """What a worker holds, sent when it sees a new term so the leader can rebuild."""

    worker_id: str
    session: str
    term: int
    held: tuple[Assignment, ...]


class Running(msgspec.Struct, frozen=True, kw_only=True, tag="running"):
    """``instances``, handed over to this worker (``Assign.handover``), run here now:
    their previous owner may stop its copies."""

    worker_id: str
    session: str
    instances: tuple[InstanceId, ...]


CoordinateRecord = Claim | Lease
HeartbeatRecord = Heartbeat | Leaving | Report | Running


class TermStart(msgspec.Struct, frozen=True, kw_only=True, tag="term"):
    """From here on only records of ``term`` or newer count on this topic."""

    term: int


class Assign(msgspec.Struct, frozen=True, kw_only=True, tag="assign"):
    """This worker runs ``assignment.instance`` at ``assignment.version``."""

    assignment: Assignment
    handover: bool = False
    """The previous owner is handing off and runs the instance until this worker
    says (``Running``) that it runs it too."""


class Unassign(msgspec.Struct, frozen=True, kw_only=True, tag="unassign"):
    """This worker no longer runs ``instance``."""

    instance: InstanceId
    term: int


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot"):
    """Everything this worker runs under ``term``, for the worker's ``session``."""

    term: int
    session: str
    assignments: tuple[Assignment, ...]


AssignmentRecord = TermStart | Assign | Unassign | Snapshot


class FunctionWrite(msgspec.Struct, frozen=True, kw_only=True, tag="function"):
    """Version ``version`` of a function; ``record`` None deletes it.

    Every reader applies the first write of ``version`` = current + 1 and ignores
    the rest, so concurrent writers through different workers agree on a winner.
    """

    fqfn: Fqfn
    version: int
    record: FunctionRecord | None
    writer: str
    request_id: str


class PackageChunk(msgspec.Struct, frozen=True, kw_only=True, tag="chunk"):
    """Part ``index`` of ``total`` of the package ``package_id``."""

    package_id: str
    index: int
    total: int
    data: bytes


def codec(kind: type) -> tuple[msgspec.msgpack.Encoder, msgspec.msgpack.Decoder]:  # type: ignore[type-arg]
    """An encoder and a decoder for one record union."""
    return msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(kind)
