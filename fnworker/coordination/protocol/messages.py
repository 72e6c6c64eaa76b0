"""What goes into the protocol's ``step`` (inputs) and what comes out (outputs),
and the timings it runs by. Pure data, no I/O.

Inputs: ``Tick`` (time passed; the time itself is ``step``'s ``now``),
``Delivered`` (a reader read a record), ``HeartbeatStored`` (a heartbeat's send
returned), ``Publish`` (the leader's planning pass wants assignments written),
``HandOff`` (a graceful stop begins: hand the instances over), ``InstancesRunning``
(the runtime runs these instances) and ``Leave`` (clean shutdown).
Outputs: ``Send`` (publish a record on a topic), ``Emit`` (tell the worker an
event) and ``Note`` (something worth a log line; the core never logs itself).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from fnworker.coordination.events import CoordinationEvent
from fnworker.coordination.wire import (
    AssignmentRecord,
    Claim,
    Heartbeat,
    Lease,
    Leaving,
    Report,
    Running,
)
from fnworker.scheduler.model.records import Assignment, InstanceId


class Timings(msgspec.Struct, frozen=True, kw_only=True):
    """How often workers speak and how long silence means death, in seconds."""

    heartbeat_interval: float = 0.2
    dead_timeout: float = 1.0
    lease_renew: float = 0.15
    lease_timeout: float = 0.6
    claim_stagger: float = 0.05
    report_wait: float = 0.3


class Topic(msgspec.Struct, frozen=True, kw_only=True):
    """One of the cluster's coordination topics; ``worker`` names an assignment topic."""

    kind: Literal["coordinate", "heartbeats", "assignments"]
    worker: str = ""


COORDINATE = Topic(kind="coordinate")
HEARTBEATS = Topic(kind="heartbeats")


def assignments_topic(worker: str) -> Topic:
    """The assignment topic only ``worker`` reads."""
    return Topic(kind="assignments", worker=worker)


# -- inputs --------------------------------------------------------------------


class Tick(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Time passed: send what is due (heartbeat, lease, claim), detect a freeze."""


ProtocolRecord = Claim | Lease | Report | Heartbeat | Leaving | Running | AssignmentRecord


class Delivered(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A reader of this worker read ``record`` (from the topic its type belongs to)."""

    record: ProtocolRecord


class Publish(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The leader's planning pass: write these changes under ``term``."""

    term: int
    assigned: tuple[Assignment, ...] = ()
    unassigned: tuple[InstanceId, ...] = ()


class Leave(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """This worker shuts down cleanly."""


class HeartbeatStored(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The broker stored this worker's heartbeat number ``seq`` (its send returned)."""

    seq: int


class HandOff(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """This worker stops gracefully: from now on its heartbeats ask the leader to move
    its instances away; it keeps running each one until its new owner runs it, for at
    most ``timeout`` seconds (then it stops what it still holds)."""

    timeout: float


class InstancesRunning(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The runtime runs ``instances`` (those handed over to this worker are confirmed)."""

    instances: tuple[InstanceId, ...]


Input = Tick | Delivered | Publish | Leave | HeartbeatStored | HandOff | InstancesRunning


# -- outputs -------------------------------------------------------------------


class Send(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Publish ``record`` on ``topic`` (in output order, after earlier sends)."""

    topic: Topic
    record: ProtocolRecord


class Emit(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Hand ``event`` to this worker's event stream."""

    event: CoordinationEvent


class Note(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A decision worth a log line: ``event`` with ``fields``, at ``level``."""

    event: str
    level: Literal["info", "warning"] = "info"
    fields: tuple[tuple[str, object], ...] = ()


Output = Send | Emit | Note
