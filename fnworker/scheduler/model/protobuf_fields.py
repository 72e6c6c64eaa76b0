"""Reading a protobuf message's top-level fields, for the few wire types Pulsar's
binary protocol uses (a BaseCommand, a serialized MessageIdData). Pure: no I/O."""

from __future__ import annotations


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``at`` and the index after it; ValueError when truncated."""
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a truncated protobuf varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def protobuf_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of one protobuf message: ints for varints and fixed
    widths, bytes for length-delimited fields."""
    found: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = read_varint(data, at)
            found.append((number, value))
        elif wire == 2:
            length, at = read_varint(data, at)
            if at + length > len(data):
                raise ValueError("a truncated protobuf field")
            found.append((number, data[at : at + length]))
            at += length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            found.append((number, int.from_bytes(data[at : at + width], "little")))
            at += width
        else:
            raise ValueError(f"protobuf wire type {wire} is not used by Pulsar commands")
    return found
