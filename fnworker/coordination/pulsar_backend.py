"""The coordination backend on Pulsar topics (the only coordination module that
imports pulsar). Does the I/O; every decision is one of the pure folds in
leadership.py, liveness.py and views.py.

Per worker: readers on the coordinate topic (leases, claims, reports), the
metadata topic (from the start) and its own assignment topic; producers for
heartbeats, claims/leases/reports, metadata and packages. The leader also reads
heartbeats and writes every worker's assignment topic. See docs/coordination.md.
"""

from __future__ import annotations

import base64
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pulsar
import pulsar.asyncio as apulsar
import structlog
from anyio.abc import ObjectReceiveStream, TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from fnworker.coordination.backend import (
    AssignmentsChanged,
    CoordinationEvent,
    FunctionsChanged,
    MembershipChanged,
    MembershipView,
    VersionConflict,
)
from fnworker.coordination.fleet_settings import FleetSettings
from fnworker.coordination.leadership import Leadership, claim_due, claimed, on_claim, on_lease
from fnworker.coordination.liveness import LivenessTable
from fnworker.coordination.replay import last_message_id, replay_topic
from fnworker.coordination.topics import ClusterTopics
from fnworker.coordination.views import AssignmentView, MetadataView
from fnworker.coordination.wire import (
    Assign,
    AssignmentRecord,
    Claim,
    CoordinateRecord,
    FunctionWrite,
    Heartbeat,
    HeartbeatRecord,
    Lease,
    Leaving,
    PackageChunk,
    Report,
    Snapshot,
    TermStart,
    Unassign,
)
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    PackageRef,
    WorkerId,
    WorkerInfo,
)

log = structlog.get_logger("fnworker.coordination")

ENCODE = msgspec.msgpack.Encoder().encode
COORDINATE = msgspec.msgpack.Decoder(CoordinateRecord | Report)
HEARTBEATS = msgspec.msgpack.Decoder(HeartbeatRecord)
ASSIGNMENTS = msgspec.msgpack.Decoder(AssignmentRecord)
METADATA = msgspec.msgpack.Decoder(FunctionWrite)
CHUNKS = msgspec.msgpack.Decoder(PackageChunk)
CHUNK_BYTES = 512 * 1024
HISTORY = 5000  # coordinate records a starting worker reads back (minutes of leases)


class PulsarCoordination:
    """One worker's handle on its cluster's coordination topics."""

    def __init__(self, settings: FleetSettings, topics: ClusterTopics) -> None:
        self.settings = settings
        self.topics = topics
        self.me: WorkerInfo | None = None
        self.session = uuid.uuid4().hex[:12]
        self.leadership = Leadership()
        self.leader_ready_term = 0
        self.liveness = LivenessTable()
        self.live: tuple[WorkerInfo, ...] = ()
        self.table: dict[InstanceId, Assignment] = {}
        self.reports: dict[int, dict[str, Report]] = {}
        self.metadata = MetadataView()
        self.mine = AssignmentView(session=self.session)
        self.tasks: TaskGroup | None = None
        """The backend's task group (set by ``start_reading``), for work that must not
        block the reader that triggered it."""
        self.waiting: dict[str, tuple[Fqfn, int, anyio.Event]] = {}
        self.write_results: dict[str, bool] = {}
        self.last_lease = 0.0
        self.fenced_at = 0.0
        self.client: apulsar.Client | None = None
        self.producers: dict[str, apulsar.Producer] = {}
        self.events: MemoryObjectSendStream[CoordinationEvent] | None = None
        self.lease_seq = 0

    # -- the CoordinationBackend contract -----------------------------------

    async def run(
        self, me: WorkerInfo, *, task_status: TaskStatus[ObjectReceiveStream[CoordinationEvent]]
    ) -> None:
        """Join the fleet, report events until cancelled, then leave cleanly."""
        self.me = me
        send, receive = anyio.create_memory_object_stream[CoordinationEvent](math.inf)
        self.events = send
        self.client = apulsar.Client(
            self.settings.service_url,
            operation_timeout_seconds=10,
            logger=client_logger(self.settings.client_log_file),
        )
        try:
            async with anyio.create_task_group() as group:
                await self.start_reading(group)
                self.emit(FunctionsChanged(changed=tuple(self.metadata.functions.values())))
                task_status.started(receive)
                group.start_soon(self.heartbeat_loop)
                group.start_soon(self.leadership_loop)
        finally:
            with anyio.CancelScope(shield=True):
                await self.leave()
                await self.client.close()

    async def write_function(self, record: FunctionRecord, expected_version: int) -> None:
        """Publish the next version and wait to learn whether it won."""
        await self.write(
            FunctionWrite(
                fqfn=record.fqfn,
                version=expected_version + 1,
                record=record,
                writer=self.me.worker_id if self.me else "",
                request_id=uuid.uuid4().hex,
            ),
            expected_version,
        )

    async def delete_function(self, fqfn: Fqfn, expected_version: int) -> None:
        """Publish a deletion as the next version and wait to learn whether it won."""
        await self.write(
            FunctionWrite(
                fqfn=fqfn,
                version=expected_version + 1,
                record=None,
                writer=self.me.worker_id if self.me else "",
                request_id=uuid.uuid4().hex,
            ),
            expected_version,
        )

    def functions(self) -> Mapping[Fqfn, FunctionRecord]:
        """Every function, as this worker's metadata reader has applied them."""
        return self.metadata.functions

    def membership(self) -> MembershipView:
        """The fleet: the leader's own liveness table, or the last lease elsewhere."""
        state = self.leadership
        if self.leading():
            return MembershipView(term=state.term, leader=state.leader, members=self.live)
        leader = state.leader if not state.leads(self.me_id()) else None
        return MembershipView(term=state.term, leader=leader, members=state.members)

    def assignments(self) -> Mapping[InstanceId, Assignment]:
        """The whole fleet's assignments (the leader's table; empty elsewhere)."""
        return self.table

    async def publish_assignments(
        self, term: int, assigned: Sequence[Assignment], unassigned: Sequence[InstanceId]
    ) -> None:
        """Leader only: write what changed to each worker's own topic."""
        if not self.leading() or term != self.leadership.term:
            log.warning("stale leader write refused", term=term, current=self.leadership.term)
            return
        sends: list[tuple[WorkerId, Assign | Unassign]] = []
        for instance in unassigned:
            previous = self.table.pop(instance, None)
            if previous is not None:
                sends.append((previous.worker, Unassign(instance=instance, term=term)))
        for assignment in assigned:
            previous = self.table.get(assignment.instance)
            if previous is not None and previous.worker != assignment.worker:
                sends.append((previous.worker, Unassign(instance=assignment.instance, term=term)))
            self.table[assignment.instance] = assignment
            sends.append((assignment.worker, Assign(assignment=assignment)))
        await self.send_all((self.topics.assignments_of(w), ENCODE(r)) for w, r in sends)

    # -- packages -----------------------------------------------------------

    async def store_package(self, ref: PackageRef, path: Path) -> PackageRef:
        """Write a package to the packages topic in chunks; the ref names the first one."""
        data = path.read_bytes()
        total = max(1, math.ceil(len(data) / CHUNK_BYTES))
        producer = await self.producer(self.topics.packages, batching=False)
        first = None
        for index in range(total):
            chunk = PackageChunk(
                package_id=ref.sha256,
                index=index,
                total=total,
                data=data[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES],
            )
            message_id = await producer.send(ENCODE(chunk))
            first = first or base64.b64encode(message_id.serialize()).decode()
        return msgspec.structs.replace(ref, message_id=first)

    async def fetch_package(self, ref: PackageRef, target: Path) -> None:
        """Read a package's chunks from the packages topic into ``target``."""
        assert self.client is not None and ref.message_id is not None
        start = pulsar.MessageId.deserialize(base64.b64decode(ref.message_id))
        reader = await self.client.create_reader(
            self.topics.packages, start, start_message_id_inclusive=True
        )
        parts: dict[int, bytes] = {}
        try:
            with anyio.fail_after(60):
                while True:
                    chunk = CHUNKS.decode((await reader.read_next()).data())
                    if chunk.package_id == ref.sha256:
                        parts[chunk.index] = chunk.data
                        if len(parts) == chunk.total:
                            break
        finally:
            await reader.close()
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(b"".join(parts[i] for i in range(len(parts))))
        partial.replace(target)  # atomic: a reader sees no file or the whole file

    # -- start-up -----------------------------------------------------------

    async def start_reading(self, group: TaskGroup) -> None:
        """Open every reader this worker needs and catch up on metadata."""
        assert self.client is not None
        self.tasks = group
        self.leadership = Leadership(heard_at=self.now())
        log.info("start-up: opening readers", session=self.session)
        mine = await self.client.create_reader(
            self.topics.assignments_of(self.me_id()), pulsar.MessageId.latest
        )
        coordinate = await self.reader_near_end(self.topics.coordinate)
        log.info("start-up: replaying the metadata topic")
        metadata = await replay_topic(
            self.client,
            self.topics.metadata,
            self.apply_metadata_bytes,
            probe_name=f"probe-{self.session}",
        )
        log.info("start-up: metadata read", functions=len(self.metadata.functions))
        group.start_soon(self.read_forever, mine, ASSIGNMENTS, self.apply_assignment)
        group.start_soon(self.read_forever, coordinate, COORDINATE, self.apply_coordinate)
        group.start_soon(self.read_forever, metadata, METADATA, self.apply_metadata_event)

    async def reader_near_end(self, topic: str) -> apulsar.Reader:
        """A reader starting HISTORY records before the end of ``topic`` (or at its start)."""
        assert self.client is not None
        last = await last_message_id(self.client, topic, f"probe-{self.session}")
        if last is None or last.entry_id() < 0:
            return await self.client.create_reader(topic, pulsar.MessageId.earliest)
        start = pulsar.MessageId(-1, last.ledger_id(), max(0, last.entry_id() - HISTORY), -1)
        return await self.client.create_reader(topic, start, start_message_id_inclusive=True)

    async def read_forever(self, reader: apulsar.Reader, decoder: Any, apply: Any) -> None:
        """Decode and apply every record a reader delivers, forever."""
        while True:
            message = await reader.read_next()
            try:
                record = decoder.decode(message.data())
            except msgspec.DecodeError as error:
                log.warning("undecodable record skipped", topic=reader.topic(), error=str(error))
                continue
            await apply(record)

    # -- applying records ---------------------------------------------------

    def apply_metadata_bytes(self, data: bytes) -> bool:
        """Decode and apply one record of the metadata topic (start-up replay)."""
        return self.apply_metadata(METADATA.decode(data))

    def apply_metadata(self, write: FunctionWrite) -> bool:
        """Apply a metadata write and settle any writer waiting on its version."""
        applied = self.metadata.apply(write)
        for request_id, (fqfn, version, done) in self.waiting.items():
            if request_id == write.request_id:
                self.write_results.setdefault(request_id, applied)
                done.set()
            elif applied and fqfn == write.fqfn and version == write.version:
                self.write_results.setdefault(request_id, False)
                done.set()
        return applied

    async def apply_metadata_event(self, write: FunctionWrite) -> None:
        """Apply a live metadata write and tell the worker."""
        if self.apply_metadata(write):
            if write.record is None:
                self.emit(FunctionsChanged(deleted=(write.fqfn,)))
            else:
                self.emit(FunctionsChanged(changed=(write.record,)))

    async def write(self, write: FunctionWrite, expected_version: int) -> None:
        """Publish a metadata write and wait until this worker's reader decides it."""
        current = self.metadata.functions.get(write.fqfn)
        actual = current.version if current else 0
        if actual != expected_version:
            raise VersionConflict(write.fqfn, expected_version, actual)
        done = anyio.Event()
        self.waiting[write.request_id] = (write.fqfn, write.version, done)
        try:
            await self.send(self.topics.metadata, ENCODE(write))
            with anyio.fail_after(30):
                await done.wait()
            if not self.write_results.get(write.request_id, False):
                now = self.metadata.functions.get(write.fqfn)
                raise VersionConflict(write.fqfn, expected_version, now.version if now else 0)
        finally:
            self.waiting.pop(write.request_id, None)
            self.write_results.pop(write.request_id, None)

    async def apply_assignment(self, record: AssignmentRecord) -> None:
        """Apply a record of this worker's assignment topic and tell the worker."""
        change = self.mine.apply(record)
        if change is not None:
            assigned, unassigned = change
            self.emit(
                AssignmentsChanged(term=self.mine.term, assigned=assigned, unassigned=unassigned)
            )

    async def apply_coordinate(self, record: CoordinateRecord | Report) -> None:
        """Apply a claim, lease or report; react to a new term."""
        if isinstance(record, Report):
            self.reports.setdefault(record.term, {})[record.worker_id] = record
            if self.leading() and record.term == self.leadership.term:
                await self.apply_late_report(record)
            return
        before = self.leadership
        if isinstance(record, Claim):
            self.leadership = on_claim(before, record, self.now())
        else:
            self.leadership = on_lease(before, record, self.now())
        if self.leadership.term != before.term:
            await self.on_new_term(before)
        elif self.leadership.members != before.members and not self.leading():
            self.emit(MembershipChanged(view=self.membership()))

    async def on_new_term(self, before: Leadership) -> None:
        """A new term began: fence older records, report what we hold, maybe lead."""
        term = self.leadership.term
        self.mine.learn_term(term)
        log.info(
            "leadership term",
            term=term,
            leader=self.leadership.leader and self.leadership.leader.worker_id,
        )
        report = Report(
            worker_id=self.me_id(),
            session=self.session,
            term=term,
            held=tuple(self.mine.held.values()),
        )
        await self.send(self.topics.coordinate, ENCODE(report))
        self.emit(MembershipChanged(view=self.membership()))
        if self.leadership.leads(self.me_id()):
            silent = before.leader.worker_id if before.leader else None
            members = tuple(m for m in before.members if m.worker_id != silent)
            # In a task of its own: take_office waits for the members' reports, which
            # arrive on the coordinate topic this reader (our caller) must go on reading.
            assert self.tasks is not None
            self.tasks.start_soon(self.take_office, term, members)

    # -- leading -------------------------------------------------------------

    def leading(self) -> bool:
        """True once this worker leads the current term and has taken office."""
        return (
            self.leadership.leads(self.me_id()) and self.leader_ready_term == self.leadership.term
        )

    async def take_office(self, term: int, previous_members: tuple[WorkerInfo, ...]) -> None:
        """Rebuild the fleet's table from reports, fence every worker's topic, then lead.

        ``previous_members`` leaves out the old leader, which went silent: it is not
        waited for, and counts as a member again only if it heartbeats."""
        assert self.me is not None
        known = {m.worker_id: m for m in (*previous_members, self.me)}
        with anyio.move_on_after(self.settings.report_wait):
            while not set(known) <= set(self.reports.get(term, {})):
                await anyio.sleep(0.01)
        if self.leadership.term != term:
            return
        self.table = rebuild_table(self.reports.get(term, {}).values())
        self.liveness = LivenessTable()
        self.liveness.expect(tuple(known.values()), self.now())
        await self.send_all(
            (self.topics.assignments_of(w), ENCODE(TermStart(term=term))) for w in known
        )
        self.live = self.liveness.live(self.now(), self.settings.dead_timeout)
        self.leader_ready_term = term
        log.info("leading", term=term, members=len(self.live), instances=len(self.table))
        await self.send_lease()
        self.emit(MembershipChanged(view=self.membership()))

    async def apply_late_report(self, report: Report) -> None:
        """A report that missed the take-over: keep what nobody else took, stop the rest."""
        taken = []
        for assignment in report.held:
            owner = self.table.get(assignment.instance)
            if owner is None:
                self.table[assignment.instance] = assignment
            elif owner.worker != report.worker_id:
                taken.append(Unassign(instance=assignment.instance, term=report.term))
        topic = self.topics.assignments_of(report.worker_id)
        await self.send_all((topic, ENCODE(record)) for record in taken)

    async def leadership_loop(self) -> None:
        """Renew the lease while leading; claim the next term when the leader is silent."""
        async with anyio.create_task_group() as group:
            group.start_soon(self.heartbeat_reader)
            last = self.now()
            while True:
                await anyio.sleep(self.settings.lease_renew / 2)
                now = self.now()
                if now - last > self.settings.dead_timeout:
                    # Woken from a freeze: the leases we missed are still unread, so the
                    # leader only *looks* silent. Fence first, claim nothing yet.
                    await self.fence_once(last, now)
                    last = now
                    continue
                last = now
                if self.leading():
                    await self.leader_tick()
                    continue
                term = claim_due(
                    self.leadership,
                    self.me_id(),
                    self.now(),
                    self.settings.lease_timeout,
                    self.settings.claim_stagger,
                )
                if term is not None:
                    self.leadership = claimed(self.leadership, term, self.now())
                    assert self.me is not None
                    log.info("claiming leadership", term=term)
                    await self.send(
                        self.topics.coordinate, ENCODE(Claim(term=term, candidate=self.me))
                    )

    async def leader_tick(self) -> None:
        """Lease renewal and failure detection, once per half lease period."""
        live = self.liveness.live(self.now(), self.settings.dead_timeout)
        if live != self.live:
            gone = {w.worker_id for w in self.live} - {w.worker_id for w in live}
            if gone:
                log.info("workers declared dead", workers=sorted(gone), term=self.leadership.term)
            self.live = live
            self.emit(MembershipChanged(view=self.membership()))
        if self.now() - self.last_lease >= self.settings.lease_renew:
            await self.send_lease()

    async def send_lease(self) -> None:
        """Tell the fleet this worker still leads, and who is alive."""
        assert self.me is not None
        self.lease_seq += 1
        self.last_lease = self.now()
        lease = Lease(
            term=self.leadership.term, leader=self.me, members=self.live, seq=self.lease_seq
        )
        await self.send(self.topics.coordinate, ENCODE(lease))

    async def heartbeat_reader(self) -> None:
        """Read heartbeats (every worker does, so a new leader has them at once)."""
        assert self.client is not None
        reader = await self.client.create_reader(self.topics.heartbeats, pulsar.MessageId.latest)
        try:
            await self.read_forever(reader, HEARTBEATS, self.apply_heartbeat)
        finally:
            with anyio.CancelScope(shield=True):
                await reader.close()

    async def apply_heartbeat(self, record: HeartbeatRecord) -> None:
        """Leader: update liveness; a new session gets its assignments re-sent."""
        if isinstance(record, Report) or not self.leading():
            return
        if isinstance(record, Leaving):
            if self.liveness.leaving(record.worker_id, record.session):
                self.live = self.liveness.live(self.now(), self.settings.dead_timeout)
                log.info("worker left", worker=record.worker_id)
                self.emit(MembershipChanged(view=self.membership()))
            return
        if self.liveness.heartbeat(record.worker, record.session, self.now()):
            await self.send_snapshot(record.worker.worker_id, record.session)
            self.live = self.liveness.live(self.now(), self.settings.dead_timeout)
            self.emit(MembershipChanged(view=self.membership()))

    async def send_snapshot(self, worker_id: str, session: str) -> None:
        """Send a (re)started worker everything it should run under this term."""
        held = tuple(a for a in self.table.values() if a.worker == worker_id)
        snapshot = Snapshot(term=self.leadership.term, session=session, assignments=held)
        topic = self.topics.assignments_of(worker_id)
        await self.send_all(
            [(topic, ENCODE(TermStart(term=self.leadership.term))), (topic, ENCODE(snapshot))]
        )

    # -- heartbeats and self-fencing ------------------------------------------

    async def heartbeat_loop(self) -> None:
        """Send heartbeats; after a freeze longer than the dead timeout, fence ourselves."""
        assert self.me is not None
        seq, last = 0, self.now()
        while True:
            now = self.now()
            if now - last > self.settings.dead_timeout:
                await self.fence_once(last, now)
            last = now
            seq += 1
            beat = Heartbeat(worker=self.me, session=self.session, seq=seq)
            await self.send(self.topics.heartbeats, ENCODE(beat))
            await anyio.sleep(self.settings.heartbeat_interval)

    async def fence_once(self, last: float, now: float) -> None:
        """Fence ourselves for a freeze from ``last`` to ``now``, unless another loop
        already did for this freeze; and hear the leader afresh, so no claim is made
        before the coordinate reader has caught up with the leases we slept through."""
        self.leadership = msgspec.structs.replace(self.leadership, heard_at=now)
        if self.fenced_at >= last:
            return
        self.fenced_at = now
        await self.fence_self(now - last)

    async def fence_self(self, frozen_for: float) -> None:
        """We were frozen: stop everything and come back as a new session."""
        log.warning(
            "worker was frozen; stopping its instances", frozen_seconds=round(frozen_for, 2)
        )
        gone = self.mine.drop_all()
        self.session = uuid.uuid4().hex[:12]
        self.mine = AssignmentView(session=self.session, term=self.mine.term)
        self.emit(AssignmentsChanged(term=self.mine.term, unassigned=gone))

    async def leave(self) -> None:
        """Say goodbye so the leader moves our instances at once."""
        if self.me is None or self.client is None:
            return
        try:
            with anyio.fail_after(2):
                await self.send(
                    self.topics.heartbeats,
                    ENCODE(Leaving(worker_id=self.me.worker_id, session=self.session)),
                )
        except Exception as error:  # noqa: BLE001 - best effort on the way out
            log.warning("could not announce leaving", error=str(error))

    # -- sending --------------------------------------------------------------

    async def producer(self, topic: str, batching: bool = True) -> apulsar.Producer:
        """A cached producer per topic (batching on: pulsar-lite duplicates unbatched bursts)."""
        producer = self.producers.get(topic)
        if producer is None:
            assert self.client is not None
            producer = await self.client.create_producer(
                topic,
                batching_enabled=batching,
                batching_max_publish_delay_ms=1,
                block_if_queue_full=True,
            )
            self.producers[topic] = producer
        return producer

    async def send(self, topic: str, data: bytes) -> pulsar.MessageId:
        """Publish one record."""
        return await (await self.producer(topic)).send(data)

    async def send_all(self, records: Any) -> None:
        """Publish many records concurrently (batched per topic)."""
        async with anyio.create_task_group() as group:
            for topic, data in records:
                group.start_soon(self.send, topic, data)

    def emit(self, event: CoordinationEvent) -> None:
        """Hand an event to the worker."""
        if self.events is not None:
            self.events.send_nowait(event)

    def me_id(self) -> str:
        """This worker's id."""
        return self.me.worker_id if self.me else ""

    @staticmethod
    def now() -> float:
        """Monotonic seconds (the only clock this module reads)."""
        return time.monotonic()


def client_logger(path: str | None) -> pulsar.FileLogger | None:
    """The C++ client's own file logger at WARN: no Python call per log line."""
    return pulsar.FileLogger(pulsar.LoggerLevel.Warn, path) if path else None


def rebuild_table(reports: Any) -> dict[InstanceId, Assignment]:
    """The fleet's assignments from workers' reports; the newest claim to an instance wins."""
    table: dict[InstanceId, Assignment] = {}
    for report in reports:
        for assignment in report.held:
            previous = table.get(assignment.instance)
            if previous is None or (assignment.term, assignment.version) > (
                previous.term,
                previous.version,
            ):
                table[assignment.instance] = assignment
    return table
