"""The state behind ``context.incr_counter``/``put_state`` for one function in one
process: durable and shared, on the function's state topic in the cluster's
functions namespace (docs/state.md). Does broker I/O with the sync client.

- **Opening** (on the first state call, so stateless functions pay nothing): read
  the topic from its start to its last entry, then keep reading it on a daemon
  thread, so writes of other instances (on any worker or runtime) arrive within
  milliseconds.
- **Writing** sends one record and waits until the broker has stored it (at most
  ``write_timeout_seconds``, then the call raises ``StateUnavailable``); a failed
  write stores nothing, and nothing stored earlier is touched.
- **Reading your own writes**: a stored record is kept as *pending* until this
  process's reader applies it, and every read folds the pending records over
  the table, so a write is visible to the next read at once and counted once.
- A record that is not a state record is skipped with one warning naming its
  position, never a crashed instance.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgspec
import pulsar
import structlog

from fnworker.scheduler.model.function_state import (
    ENCODE,
    MAX_KEYS,
    StateEntry,
    StateError,
    StateRecord,
    StateTable,
    check_key,
    decode_record,
    entry_with,
    value_record,
)
from fnworker.scheduler.model.instances import StateSettings

log = structlog.get_logger("fnworker.state")

Position = tuple[int, int]
"""(ledger, entry) of a record; state producers never batch, so one record each."""
READ_POLL_MS = 200
REMEMBERED_POSITIONS = 65_536
"""How many applied positions a reader remembers to drop redelivered duplicates."""


class StateUnavailable(RuntimeError):
    """The state topic could not be read or written in time; the message says which."""


def position_of(message_id: pulsar.MessageId) -> Position:
    """Where a record sits in its topic."""
    return (message_id.ledger_id(), message_id.entry_id())


class FunctionStateLog:
    """State of one incarnation of one function, shared by its instances in this process."""

    def __init__(
        self,
        client: Callable[[], pulsar.Client],
        topic: str,
        *,
        incarnation: int,
        settings: StateSettings,
    ) -> None:
        self._client_of = client
        self.topic = topic
        self.incarnation = incarnation
        self.timeout = settings.write_timeout_seconds
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._table = StateTable(incarnation)
        self._pending: OrderedDict[Position, StateRecord] = OrderedDict()
        self._applied: OrderedDict[Position, None] = OrderedDict()
        self._producer: pulsar.Producer | None = None
        self._reader: pulsar.Reader | None = None
        self._closed = threading.Event()
        self._tail: threading.Thread | None = None

    # -- the Context's calls ---------------------------------------------------

    def incr_counter(self, key: str, amount: int) -> int:
        """Add ``amount`` to the counter ``key``; the new value as this process sees it."""
        key = check_key(key)
        current = self._entry(key)
        if current is not None and current.number is None:
            raise StateError(f"state key '{key}' holds a value, not a counter")
        self._write(StateRecord(op="incr", key=key, amount=int(amount)), new_key=current is None)
        entry = self._entry(key)
        return entry.number or 0 if entry is not None else 0

    def get_counter(self, key: str) -> int:
        """The counter ``key``, 0 if it was never incremented (or holds a value)."""
        entry = self._entry(check_key(key))
        return entry.number or 0 if entry is not None else 0

    def delete(self, key: str) -> None:
        """Remove ``key``, counter or value."""
        self._write(StateRecord(op="delete", key=check_key(key)), new_key=False)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (str or bytes) under ``key``."""
        key = check_key(key)
        self._ensure_open()
        self._write(value_record(key, value, 0), new_key=self._entry(key) is None)

    def get(self, key: str) -> Any:
        """The value under ``key`` (str if it was put as str, else bytes), None if absent."""
        entry = self._entry(check_key(key))
        if entry is None or entry.value is None:
            return None
        return entry.value.decode() if entry.text else entry.value

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Stop reading and close the producer and reader (best effort)."""
        self._closed.set()
        if self._tail is not None:
            self._tail.join(READ_POLL_MS / 1000 * 5)
        self._close_handles()

    def _close_handles(self) -> None:
        """Close the producer and reader, ignoring failures."""
        for closable in (self._producer, self._reader):
            if closable is not None:
                try:
                    closable.close()
                except Exception as error:  # noqa: BLE001 - closing is best effort
                    log.debug("closing a state handle failed", topic=self.topic, error=str(error))
        self._producer = self._reader = None

    # -- internals ---------------------------------------------------------------

    def _entry(self, key: str) -> StateEntry | None:
        self._ensure_open()
        with self._lock:
            return entry_with(self._table.entry(key), self._pending.values(), key)

    def _write(self, record: StateRecord, *, new_key: bool) -> None:
        """Store one record (blocking until the broker has it) and keep it pending."""
        self._ensure_open()
        record = msgspec.structs.replace(record, incarnation=self.incarnation)
        if new_key and len(self._table.entries) >= MAX_KEYS:
            raise StateError(
                f"state key '{record.key}' would be key {MAX_KEYS + 1} of {self.topic}; "
                f"a function may hold at most {MAX_KEYS} keys"
            )
        producer = self._producer
        if producer is None:
            raise StateUnavailable(f"state of {self.topic} is closed (the instance is stopping)")
        try:
            message_id = producer.send(ENCODE(record))
        except Exception as error:
            raise StateUnavailable(
                f"writing state key '{record.key}' to {self.topic} failed within "
                f"{self.timeout:.0f} s: {error}; nothing was written"
            ) from None
        position = position_of(message_id)
        with self._lock:
            if position not in self._applied:
                self._pending[position] = record

    def _ensure_open(self) -> None:
        if self._tail is not None:
            return
        with self._open_lock:
            if self._tail is None:
                self._open()

    def _open(self) -> None:
        """Create the producer, replay the topic to its last entry, start the tail."""
        client = self._client_of()
        try:
            self._producer = client.create_producer(
                self.topic,
                batching_enabled=False,
                send_timeout_millis=int(self.timeout * 1000),
                block_if_queue_full=True,
            )
            end = self._last_position(client)
            self._reader = client.create_reader(self.topic, pulsar.MessageId.earliest)
            self._replay_until(end)
        except Exception as error:
            self._close_handles()  # the next state call opens again from scratch
            if isinstance(error, StateUnavailable):
                raise
            raise StateUnavailable(f"reading state from {self.topic} failed: {error}") from None
        tail = threading.Thread(target=self._read_forever, name="state-reader", daemon=True)
        tail.start()
        self._tail = tail

    def _last_position(self, client: pulsar.Client) -> Position | None:
        """The topic's last entry now, through a probe subscription made for it."""
        probe = client.subscribe(self.topic, f"fnworker-state-probe-{uuid.uuid4().hex[:12]}")
        try:
            last = probe.get_last_message_id()
        except pulsar.PulsarException:
            last = None  # pulsar-lite's answer for a topic with no messages yet
        finally:
            probe.unsubscribe()
            probe.close()
        if last is None or last.entry_id() < 0:
            return None
        return position_of(last)

    def _replay_until(self, end: Position | None) -> None:
        assert self._reader is not None
        position: Position = (-1, -1)
        while end is not None and position < end:
            try:
                message = self._reader.read_next(int(self.timeout * 1000))
            except pulsar.Timeout:
                raise StateUnavailable(
                    f"reading state from {self.topic} stalled at {position} "
                    f"for {self.timeout:.0f} s"
                ) from None
            position = position_of(message.message_id())
            self._apply(message)

    def _read_forever(self) -> None:
        """The tail: apply records written after the replay until closed."""
        reader = self._reader
        assert reader is not None
        while not self._closed.is_set():
            try:
                message = reader.read_next(READ_POLL_MS)
            except pulsar.Timeout:
                continue
            except Exception as error:  # noqa: BLE001 - reported, then keep reading
                if self._closed.is_set():
                    return
                log.warning("reading state failed; retrying", topic=self.topic, error=str(error))
                self._closed.wait(1.0)
                continue
            self._apply(message)

    def _apply(self, message: pulsar.Message) -> None:
        position = position_of(message.message_id())
        record = decode_record(message.data())
        with self._lock:
            if position in self._applied:
                return
            self._applied[position] = None
            if len(self._applied) > REMEMBERED_POSITIONS:
                self._applied.popitem(last=False)
            self._pending.pop(position, None)
            if record is None:
                log.warning("skipped a record that is not state", topic=self.topic, at=position)
                return
            ignored = self._table.apply(record)
        if ignored:
            log.warning("skipped a state record", topic=self.topic, key=record.key, why=ignored)
