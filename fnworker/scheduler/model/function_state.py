"""Function state as a log: the records ``context.incr_counter``/``put_state`` and the
REST state API write to a function's state topic, the fold every reader applies
them with, the topic's name, and the size limits. Pure (docs/state.md).

Why a log of deltas is correct: every write is one record on one topic, so all
readers see the same records in the same order. An increment records the amount,
never the result, so increments from instances on different workers add up
whatever their interleaving; a put, a delete and a clear take effect in topic
order, the same for every reader. A reader applies each message id once, so the
broker's redelivered duplicates (pulsar-lite's readers get some) change nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Literal

import msgspec

MAX_KEY_BYTES = 1024
"""Longest state key (UTF-8 bytes)."""
MAX_VALUE_BYTES = 512 * 1024
"""Largest value ``put_state`` or the REST API may store (pulsar-lite's messages
should stay well under 1 MiB)."""
MAX_KEYS = 100_000
"""Most keys one function may hold; a write of a new key beyond it is refused."""

StateOp = Literal["incr", "put", "delete", "clear"]


class StateRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One write to a function's state topic.

    ``incarnation`` is the function's ``create_time_ms``: a function deleted and
    created again under the same name is a new incarnation and starts empty; the
    ``clear`` written at the delete also voids late writes of the old one."""

    op: StateOp
    key: str = ""
    amount: int = 0
    value: bytes = b""
    text: bool = False
    """The value was put as a ``str`` (returned as ``str`` again)."""
    incarnation: int = 0


class StateEntry(msgspec.Struct, kw_only=True):
    """The folded value of one key: a counter (``number``) or a value."""

    number: int | None = None
    value: bytes | None = None
    text: bool = False
    version: int = 0
    """How many writes made this entry (Pulsar's ``FunctionState.version``)."""
    incarnation: int = 0


class FunctionStateReply(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Pulsar's ``FunctionState`` JSON (``GET/POST .../state/{key}``)."""

    key: str
    string_value: str | None = None
    byte_value: bytes | None = None
    number_value: int | None = None
    version: int | None = None


class StateError(ValueError):
    """A state call with a key or value fnworker refuses; the message is one sentence."""


ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(StateRecord)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]")


def decode_record(data: bytes) -> StateRecord | None:
    """The record in ``data``, None if it is not a state record."""
    try:
        return _DECODE.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def state_topic(namespace: str, fqfn: str) -> str:
    """The state topic of ``fqfn`` in the cluster's functions namespace: readable,
    plus a hash so names that differ only in unsafe characters never share one."""
    readable = _UNSAFE.sub("_", fqfn.replace("/", "."))
    digest = hashlib.sha1(fqfn.encode()).hexdigest()[:8]
    return f"persistent://{namespace}/state-{readable}-{digest}"


def check_key(key: object) -> str:
    """``key`` if it is a usable state key, else StateError naming what is valid."""
    if not isinstance(key, str):
        raise StateError(f"state key {key!r} is a {type(key).__name__}; keys must be strings")
    if not key:
        raise StateError("state key '' is empty; keys must be 1 to 1024 bytes")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise StateError(
            f"state key '{key[:40]}...' is {len(key.encode())} bytes; "
            f"keys may be at most {MAX_KEY_BYTES} bytes"
        )
    return key


def value_record(key: str, value: object, incarnation: int) -> StateRecord:
    """The ``put`` record for ``value`` (str or bytes), or StateError."""
    if isinstance(value, str):
        data, text = value.encode(), True
    elif isinstance(value, bytes | bytearray | memoryview):
        data, text = bytes(value), False
    else:
        raise StateError(
            f"state value for key '{key}' is a {type(value).__name__}; put_state takes str or bytes"
        )
    if len(data) > MAX_VALUE_BYTES:
        raise StateError(
            f"state value for key '{key}' is {len(data)} bytes; "
            f"values may be at most {MAX_VALUE_BYTES} bytes"
        )
    return StateRecord(op="put", key=key, value=data, text=text, incarnation=incarnation)


class StateTable:
    """The fold of one function's state topic for one incarnation of the function:
    records of other incarnations (a deleted function of the same name, or its late
    writes) are not this function's state."""

    def __init__(self, incarnation: int) -> None:
        self.incarnation = incarnation
        self.entries: dict[str, StateEntry] = {}
        self.cleared = False

    def apply(self, record: StateRecord) -> str:
        """Apply one record; a short reason when it is refused, else '' (records of
        other incarnations, and late ones after a clear, are left out silently)."""
        if record.incarnation != self.incarnation or self.cleared:
            return ""
        if record.op == "clear":
            self.cleared = True
            self.entries = {}
            return ""
        return apply_to(self.entries, record)

    def entry(self, key: str) -> StateEntry | None:
        """The entry of ``key``, None if absent."""
        return self.entries.get(key)


def apply_to(entries: dict[str, StateEntry], record: StateRecord) -> str:
    """Apply an incr, put or delete to ``entries``; a reason when ignored, else ''."""
    current = entries.get(record.key)
    if record.op == "delete":
        entries.pop(record.key, None)
        return ""
    version = current.version + 1 if current is not None else 1
    if record.op == "incr":
        if current is not None and current.number is None:
            return "an increment of a key that holds a value"
        number = (current.number or 0) if current is not None else 0
        entries[record.key] = StateEntry(
            number=number + record.amount, version=version, incarnation=record.incarnation
        )
        return ""
    entries[record.key] = StateEntry(
        value=record.value, text=record.text, version=version, incarnation=record.incarnation
    )
    return ""


def entry_with(
    base: StateEntry | None, pending: Iterable[StateRecord], key: str
) -> StateEntry | None:
    """``base`` with this instance's own writes that readers have not applied yet."""
    entries = {key: base} if base is not None else {}
    for record in pending:
        if record.op == "clear":
            entries.clear()
        elif record.key == key:
            apply_to(entries, record)
    return entries.get(key)


def reply_of(key: str, entry: StateEntry) -> FunctionStateReply:
    """Pulsar's FunctionState for an entry: a number, else a string when the bytes
    are UTF-8, else bytes (as Pulsar's getFunctionState decides)."""
    if entry.number is not None:
        return FunctionStateReply(key=key, number_value=entry.number, version=entry.version)
    data = entry.value or b""
    try:
        return FunctionStateReply(key=key, string_value=data.decode(), version=entry.version)
    except UnicodeDecodeError:
        return FunctionStateReply(key=key, byte_value=data, version=entry.version)
