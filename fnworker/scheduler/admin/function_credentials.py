"""The submitter's credentials a function runs with: stored through the runtime's
function auth provider when a record is written, removed when it is not or is replaced.
"""

from __future__ import annotations

import msgspec
import structlog

from fnworker.runtimes.driver import FunctionAuthProvider, RuntimeCallError
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.records import FunctionRecord

log = structlog.get_logger("fnworker.admin")


class FunctionCredentials:
    """Keeps each function's credentials with its provider (nothing without one)."""

    def __init__(self, provider: FunctionAuthProvider | None) -> None:
        self.provider = provider

    async def attach(self, record: FunctionRecord, token: str | None) -> FunctionRecord:
        """The record naming where the provider stored ``token`` (unchanged without one)."""
        if self.provider is None:
            return record
        try:
            auth = await self.provider.cache_auth(record, token)
        except RuntimeCallError as error:
            raise ApiError(
                500, f"storing the credentials of function {record.fqfn} failed: {error}"
            ) from None
        return msgspec.structs.replace(record, auth=auth)

    def would_change(self, record: FunctionRecord, token: str | None) -> bool:
        """Whether writing a new version of ``record`` with ``token`` changes the stored
        credentials: with a provider, every token-bearing update renews them, and one
        without a token removes the stored ones."""
        return self.provider is not None and (token is not None or record.auth is not None)

    async def forget(self, record: FunctionRecord) -> None:
        """Remove the credentials stored for a record that was not written, or that a
        newer version replaced (best effort: a leftover Secret is logged, not fatal)."""
        if self.provider is None or record.auth is None:
            return
        try:
            await self.provider.clean_up(record)
        except RuntimeCallError as error:
            log.warning(
                "removing unused credentials failed", function=record.fqfn, error=str(error)
            )
