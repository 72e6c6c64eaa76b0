"""Hostile function packages, built in a temporary folder by the tests that need
them (never committed): a zip bomb, a zip with too many files, a zip whose module
is too large to parse, and a zip whose dependency wheel is a bomb. Each also holds
an ordinary module ``fn`` with ``process``, so only a limit can refuse it.

Large entries repeat one block: the block is deflated once, with a full flush so
every copy compresses to the same bytes, and the zip is written by hand around the
repeated bytes. A 1 GiB bomb takes well under a second to build instead of seconds
of compressing zeros."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

GIB = 1024**3
MIB = 1024**2
FUNCTION_SOURCE = "def process(value):\n    return value\n"
_DEFLATED = 8
_STORED = 0


class Entry:
    """One zip entry: its name, method, CRC, sizes and the compressed bytes' parts."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name.encode()
        self.method = _STORED
        self.crc = zlib.crc32(data)
        self.size = len(data)
        self.parts: list[tuple[bytes, int]] = [(data, 1)]

    @classmethod
    def repeated(cls, name: str, block: bytes, count: int) -> Entry:
        """``count`` copies of ``block``, deflated once (the bytes repeat after a full flush)."""
        entry = cls(name, b"")
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
        again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
        assert first == again
        crc = 0
        for _ in range(count):
            crc = zlib.crc32(block, crc)
        entry.method, entry.crc, entry.size = _DEFLATED, crc, len(block) * count
        entry.parts = [(first, count), (compressor.flush(), 1)]
        return entry

    @property
    def compressed_size(self) -> int:
        return sum(len(part) * times for part, times in self.parts)

    def header(self, signature: bytes, offset: int | None) -> bytes:
        """The local header (offset None) or the central directory header."""
        fields = (20, 0, self.method, 0, 0x21, self.crc, self.compressed_size, self.size)
        if offset is None:
            return signature + struct.pack("<HHHHHIIIHH", *fields, len(self.name), 0) + self.name
        central = struct.pack(
            "<HHHHHHIIIHHHHHII", 20, *fields, len(self.name), 0, 0, 0, 0, 0, offset
        )
        return signature + central + self.name


def write_zip(target: BinaryIO, entries: list[Entry]) -> None:
    """A plain (not zip64) archive of ``entries``; every size must stay below 4 GiB."""
    offsets = []
    position = 0
    for entry in entries:
        offsets.append(position)
        header = entry.header(b"PK\x03\x04", None)
        target.write(header)
        for part, times in entry.parts:
            target.writelines(part for _ in range(times))
        position += len(header) + entry.compressed_size
    directory = b"".join(e.header(b"PK\x01\x02", o) for e, o in zip(entries, offsets, strict=True))
    target.write(directory)
    end = struct.pack("<HHHHIIH", 0, 0, len(entries), len(entries), len(directory), position, 0)
    target.write(b"PK\x05\x06" + end)


def zip_bomb(path: Path, unpacked_bytes: int = GIB) -> Path:
    """A zip whose one data entry unpacks to ``unpacked_bytes`` of zeros (1 GiB: ~1 MB)."""
    entries = [
        Entry("fn.py", FUNCTION_SOURCE.encode()),
        Entry.repeated("data/zeros.bin", bytes(MIB), unpacked_bytes // MIB),
    ]
    with path.open("wb") as target:
        write_zip(target, entries)
    return path


def many_files_zip(path: Path, count: int) -> Path:
    """A zip of ``count`` tiny files besides the function module."""
    entries = [Entry("fn.py", FUNCTION_SOURCE.encode())]
    entries += [Entry(f"data/{index}.txt", b"") for index in range(count)]
    with path.open("wb") as target:
        write_zip(target, entries)
    return path


def big_module_zip(path: Path, module_bytes: int, module: str = "fn") -> Path:
    """A zip whose entry module is ``module_bytes`` long: the function, then comment lines."""
    line = b"#" * 1023 + b"\n"
    head = FUNCTION_SOURCE.encode()
    block = head + line * ((MIB - len(head)) // len(line))
    block += b"#" * (MIB - len(block) - 1) + b"\n"
    entry = Entry.repeated(f"{module}.py", block, module_bytes // MIB)
    with path.open("wb") as target:
        write_zip(target, [entry])
    return path


def nested_wheel_bomb(path: Path, unpacked_bytes: int) -> Path:
    """A Pulsar-layout zip (``fn/src``, ``fn/deps``) whose dependency wheel unpacks to
    ``unpacked_bytes`` of zeros while the outer listing declares only the wheel's size."""
    wheel = io.BytesIO()
    write_zip(
        wheel,
        [
            Entry("dep-1.0.dist-info/METADATA", b"Name: dep\nVersion: 1.0\n"),
            Entry.repeated("dep/zeros.bin", bytes(MIB), unpacked_bytes // MIB),
        ],
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("fn/src/fn.py", FUNCTION_SOURCE)
        archive.writestr("fn/deps/dep-1.0-py3-none-any.whl", wheel.getvalue())
    return path


def function_zip(path: Path) -> Path:
    """An ordinary zip package holding module ``fn``."""
    with path.open("wb") as target:
        write_zip(target, [Entry("fn.py", FUNCTION_SOURCE.encode())])
    return path
