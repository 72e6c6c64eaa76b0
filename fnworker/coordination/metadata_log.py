"""Function metadata without a leader, over any transport: every worker applies the
metadata topic with ``MetadataView`` (the first write of each version wins), and a
writer publishes the next version and waits until its own reader has decided
whether it won. Does no I/O itself: the transport's publish is passed in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import anyio

from fnworker.coordination.events import VersionConflict
from fnworker.coordination.views import MetadataView
from fnworker.coordination.wire import FunctionWrite
from fnworker.scheduler.model.records import Fqfn, FunctionRecord

WRITE_TIMEOUT = 30.0
"""How long a writer waits for its reader to reach its own write."""


class MetadataLog:
    """This worker's view of the metadata topic, and the writers waiting on it."""

    def __init__(self) -> None:
        self.view = MetadataView()
        self.waiting: dict[str, tuple[Fqfn, int, anyio.Event]] = {}
        self.results: dict[str, bool] = {}

    def functions(self) -> Mapping[Fqfn, FunctionRecord]:
        """Every function, as this worker's reader has applied them."""
        return self.view.functions

    def restore(self, functions: Mapping[Fqfn, FunctionRecord]) -> None:
        """Start from a snapshot's functions (before any record is applied)."""
        self.view.functions = dict(functions)

    def apply(self, write: FunctionWrite) -> bool:
        """Apply one record of the topic and settle any writer waiting on its version."""
        applied = self.view.apply(write)
        for request_id, (fqfn, version, done) in self.waiting.items():
            if request_id == write.request_id:
                self.results.setdefault(request_id, applied)
                done.set()
            elif applied and fqfn == write.fqfn and version == write.version:
                self.results.setdefault(request_id, False)
                done.set()
        return applied

    async def write(
        self,
        write: FunctionWrite,
        expected_version: int,
        publish: Callable[[FunctionWrite], Awaitable[object]],
    ) -> None:
        """Publish ``write`` and wait until this worker's reader decides it; a lost
        write (or a stale ``expected_version``) raises ``VersionConflict``."""
        current = self.view.functions.get(write.fqfn)
        actual = current.version if current else 0
        if actual != expected_version:
            raise VersionConflict(write.fqfn, expected_version, actual)
        done = anyio.Event()
        self.waiting[write.request_id] = (write.fqfn, write.version, done)
        try:
            await publish(write)
            with anyio.fail_after(WRITE_TIMEOUT):
                await done.wait()
            if not self.results.get(write.request_id, False):
                now = self.view.functions.get(write.fqfn)
                raise VersionConflict(write.fqfn, expected_version, now.version if now else 0)
        finally:
            self.waiting.pop(write.request_id, None)
            self.results.pop(write.request_id, None)
