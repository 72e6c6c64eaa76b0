"""Errors a caller can cause, each carrying the HTTP status Pulsar answers with and
one sentence naming the field, the value and what would be valid. No I/O."""

from __future__ import annotations


class ApiError(Exception):
    """A request that cannot be served; ``reason`` is shown to the user as is."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def bad_request(reason: str) -> ApiError:
    """400: the request is invalid."""
    return ApiError(400, reason)


def not_found(reason: str) -> ApiError:
    """404: the function (or instance) does not exist."""
    return ApiError(404, reason)


def conflict(reason: str) -> ApiError:
    """409: the function already exists, or a concurrent change won."""
    return ApiError(409, reason)


def unavailable(reason: str) -> ApiError:
    """503: the worker is not ready yet (or no leader is known)."""
    return ApiError(503, reason)
