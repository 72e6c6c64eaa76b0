"""The uploads index (``POST /admin/v3/functions/upload``): the record a worker writes
for each upload, and the fold that finds the latest upload of every path. Pure data,
no I/O.

An upload's content is stored like a package (chunks on the packages topic, or a file
on the memory backend); the record says where, so any worker can fetch it. The index
lives on ``{functionMetadataTopicName}-uploads``; the last record of a path in topic
order is its current content (a later upload to the same path replaces it).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec


class UploadRecord(msgspec.Struct, frozen=True, kw_only=True, tag="upload"):
    """``path`` now holds ``size`` bytes whose SHA-256 is ``sha256``, stored at ``where``."""

    path: str
    sha256: str
    size: int
    where: str
    """The MessageId (base64) of the first chunk on the packages topic (pulsar backend),
    or the file holding the content (memory backend: every member shares one disk)."""
    upload_id: str
    """Unique per upload: the chunks' package id, so a fetch takes only this upload's."""


ENCODE_UPLOAD = msgspec.msgpack.Encoder().encode
DECODE_UPLOAD = msgspec.msgpack.Decoder(UploadRecord).decode


def latest_uploads(records: Iterable[UploadRecord]) -> dict[str, UploadRecord]:
    """The last record of each path, in the order given (topic order)."""
    latest: dict[str, UploadRecord] = {}
    for record in records:
        latest[record.path] = record
    return latest
