"""The REST state API of a function (``GET/POST .../{tenant}/{namespace}/{name}/state/
{key}``) and the clear written when a function is deleted: reads and writes the
function's state topic through the coordination backend, in Pulsar's FunctionState
shape (docs/state.md). Does I/O through the backend."""

from __future__ import annotations

import msgspec
import structlog

from fnworker.coordination.backend import CoordinationBackend
from fnworker.coordination.replay import ReplayStalled
from fnworker.scheduler.admin.function_reads import FunctionReads
from fnworker.scheduler.model.errors import ApiError, bad_request, not_found
from fnworker.scheduler.model.function_state import (
    FunctionStateReply,
    StateError,
    StateRecord,
    check_key,
    reply_of,
    value_record,
)
from fnworker.scheduler.model.records import FunctionRecord

log = structlog.get_logger("fnworker.admin")
_STATE = msgspec.json.Decoder(FunctionStateReply)


class StateService:
    """Reads and writes one function's state for the admin."""

    def __init__(self, reads: FunctionReads, backend: CoordinationBackend) -> None:
        self.reads = reads
        self.backend = backend

    async def get(self, tenant: str, namespace: str, name: str, key: str) -> FunctionStateReply:
        """The key's state, or 404 with Pulsar's reason when it does not exist."""
        record = self.reads.record(tenant, namespace, name)
        key = _checked(key)
        try:
            table = await self.backend.read_state(record.fqfn, record.create_time_ms)
        except ReplayStalled as error:
            raise ApiError(503, f"reading the state of {record.fqfn} failed: {error}") from None
        entry = table.entry(key)
        if entry is None:
            raise not_found(f"key '{key}' doesn't exist.")
        return reply_of(key, entry)

    async def put(self, tenant: str, namespace: str, name: str, key: str, body: bytes) -> None:
        """Store a string or bytes value sent as Pulsar's FunctionState JSON."""
        record = self.reads.record(tenant, namespace, name)
        state = decode_state(body)
        if state.key != key:
            raise bad_request("Path key doesn't match key in json")
        if state.string_value is None and state.byte_value is None:
            raise bad_request("Setting Counter values not supported in put state")
        value: str | bytes = (
            state.string_value
            if state.string_value or state.byte_value is None
            else state.byte_value
        ) or ""
        try:
            write = value_record(_checked(key), value, record.create_time_ms)
        except StateError as error:
            raise bad_request(str(error)) from None
        await self.backend.write_state(record.fqfn, write)

    async def clear(self, record: FunctionRecord) -> None:
        """Mark the deleted function's state gone (best effort: a re-created function is
        a new incarnation and never sees the old state anyway)."""
        try:
            await self.backend.write_state(
                record.fqfn, StateRecord(op="clear", incarnation=record.create_time_ms)
            )
        except Exception as error:  # noqa: BLE001 - logged; the delete itself succeeded
            log.warning(
                "clearing a deleted function's state failed", function=record.fqfn, error=str(error)
            )


def decode_state(body: bytes) -> FunctionStateReply:
    """The ``state`` part as Pulsar's FunctionState, or 400 naming what is wrong."""
    try:
        return _STATE.decode(body)
    except msgspec.DecodeError as error:
        raise bad_request(
            f"part 'state' is not a FunctionState JSON object ({error}); expected "
            '{"key": ..., "stringValue": ...} or {"key": ..., "byteValue": <base64>}'
        ) from None


def _checked(key: str) -> str:
    """``key`` if usable, else 400 with the key rule."""
    try:
        return check_key(key)
    except StateError as error:
        raise bad_request(str(error)) from None
