"""Which broker a worker talks to, and which broker-specific workarounds follow from
it. Pure: the few protobuf bytes of Pulsar's CONNECT/CONNECTED frames, the kind a
CONNECTED's ``server_version`` names, and the consumer-id slots to use. The socket
I/O is in broker_probe.py.

Pulsar's binary protocol frames a command as a 4-byte total size, a 4-byte command
size and a protobuf ``BaseCommand`` (PulsarApi.proto): field 1 ``type`` (CONNECT = 2,
CONNECTED = 3), field 2 ``connect`` (``client_version`` = 1, ``protocol_version`` =
4), field 3 ``connected`` (``server_version`` = 1). Apache Pulsar answers
``Pulsar Server<version>``; pulsar-lite answers ``Pulsar-Lite-<version>``.
"""

from __future__ import annotations

import enum
import struct

import msgspec

from fnworker.scheduler.model.protobuf_fields import protobuf_fields

CONNECT = 2
CONNECTED = 3
PROTOCOL_VERSION = 19
CLIENT_VERSION = "fnworker-broker-probe"
MAX_FRAME_BYTES = 64 * 1024
"""A CONNECTED frame is a few dozen bytes; a larger announced size is not Pulsar."""
DEFAULT_PULSAR_LITE_SLOTS = 16
"""Consumer-id slots on pulsar-lite when ``pulsarLiteConsumerIdSlots`` is unset: at
most 15 throw-away readers before a subscribe and 16-128 when a client starts (each
closed reader costs pulsar-lite ~17 KiB); two workers whose ids hash to one slot can
still clash (for 3 random worker ids, about 1 fleet in 5 has two in one slot; each
client's random start block makes an actual clash rarer), which is what the key's
override is for."""


class BrokerKind(enum.Enum):
    """What the broker's CONNECTED response says it is."""

    PULSAR_LITE = "pulsar-lite"
    OTHER = "other"
    """Answered CONNECTED with another version (Apache Pulsar, or a proxy)."""
    UNKNOWN = "unknown"
    """Not asked (TLS URL) or no usable answer in time."""


class BrokerFinding(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of asking the broker who it is."""

    kind: BrokerKind
    server_version: str = ""
    detail: str = ""
    """Why the kind is unknown, in a few words (empty otherwise)."""


def kind_of(server_version: str) -> BrokerKind:
    """pulsar-lite names itself ``Pulsar-Lite-<version>``; anything else is another broker."""
    if server_version.lower().startswith("pulsar-lite"):
        return BrokerKind.PULSAR_LITE
    return BrokerKind.OTHER


def consumer_id_slots(kind: BrokerKind, override: int | None) -> int:
    """The consumer-id slots this worker uses (0 = no workaround): the key's value when
    set, else the default on pulsar-lite and none anywhere else."""
    if override is not None:
        return override
    return DEFAULT_PULSAR_LITE_SLOTS if kind is BrokerKind.PULSAR_LITE else 0


def probe_address(service_url: str) -> tuple[str, int] | None:
    """The (host, port) to ask, from the first host of a ``pulsar://`` service URL;
    None for TLS (``pulsar+ssl://``: pulsar-lite has no TLS listener) or a URL that is
    not a Pulsar binary-protocol URL."""
    scheme, found, rest = service_url.strip().partition("://")
    if not found or scheme != "pulsar":
        return None
    first = rest.split(",", 1)[0].split("/", 1)[0]
    host, colon, port = first.rpartition(":")
    if not colon:
        host, port = first, "6650"
    host = host.strip("[]")
    if not host or not port.isdigit():
        return None
    return host, int(port)


def connect_frame(client_version: str = CLIENT_VERSION) -> bytes:
    """A CONNECT command frame."""
    connect = _field_bytes(1, client_version.encode()) + _field_varint(4, PROTOCOL_VERSION)
    command = _field_varint(1, CONNECT) + _field_bytes(2, connect)
    return struct.pack(">II", len(command) + 4, len(command)) + command


def connected_frame(server_version: str) -> bytes:
    """A CONNECTED command frame (what a broker answers; for tests and fakes)."""
    connected = _field_bytes(1, server_version.encode()) + _field_varint(2, PROTOCOL_VERSION)
    command = _field_varint(1, CONNECTED) + _field_bytes(3, connected)
    return struct.pack(">II", len(command) + 4, len(command)) + command


def frame_size(header: bytes) -> int:
    """The body size a frame's 4-byte total-size header announces; ValueError when it
    cannot be a Pulsar command frame."""
    (size,) = struct.unpack(">I", header)
    if not 4 <= size <= MAX_FRAME_BYTES:
        raise ValueError(f"a frame of {size} bytes is not a Pulsar command")
    return int(size)


def server_version_of(body: bytes) -> str:
    """The ``server_version`` of a CONNECTED frame body (the bytes after the total
    size); ValueError naming the command type when it is not CONNECTED."""
    (command_size,) = struct.unpack(">I", body[:4])
    command = body[4 : 4 + command_size]
    fields = dict(protobuf_fields(command))
    command_type, connected = fields.get(1), fields.get(3)
    if command_type != CONNECTED or not isinstance(connected, bytes):
        raise ValueError(f"the broker answered command type {command_type!r}, not CONNECTED")
    version = dict(protobuf_fields(connected)).get(1, b"")
    return version.decode("utf-8", "replace") if isinstance(version, bytes) else ""


# -- protobuf, the few wire types a BaseCommand uses ------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value
