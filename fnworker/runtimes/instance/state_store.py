"""The state behind ``context.incr_counter``/``put_state``: an in-process map
shared by the instances of one function in this worker. Not durable: it is lost
when the worker stops and is not shared between workers (docs/instance-host.md,
"Where state lives for now"). No I/O.
"""

from __future__ import annotations

import threading
from typing import Any


class StateStore:
    """Counters and values of one function, safe to use from several instance threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}

    def incr_counter(self, key: str, amount: int) -> int:
        """Add ``amount`` to the counter ``key`` (absent counts as 0); return the new value."""
        with self._lock:
            current = self._values.get(key, 0)
            if not isinstance(current, int):
                raise TypeError(f"state key '{key}' holds a value, not a counter")
            updated = current + int(amount)
            self._values[key] = updated
            return updated

    def get_counter(self, key: str) -> int:
        """The counter ``key``, 0 if it was never incremented."""
        with self._lock:
            value = self._values.get(key, 0)
        return value if isinstance(value, int) else 0

    def delete(self, key: str) -> None:
        """Remove ``key`` (counter or value); a no-op if absent."""
        with self._lock:
            self._values.pop(key, None)

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``."""
        with self._lock:
            self._values[key] = value

    def get(self, key: str) -> Any:
        """The value under ``key``, or None."""
        with self._lock:
            return self._values.get(key)


class StateStores:
    """One StateStore per function name, created on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[str, StateStore] = {}

    def for_function(self, fqfn: str) -> StateStore:
        """The store shared by every instance of ``fqfn`` in this process."""
        with self._lock:
            return self._stores.setdefault(fqfn, StateStore())
