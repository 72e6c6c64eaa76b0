"""Which ``FunctionStateLog`` an instance uses: one per function incarnation in a
process, shared by its instances there and closed when the last one lets go.
Opens one pulsar client for state on first use (blocking I/O when it does)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pulsar

from fnworker.runtimes.instance.state_log import FunctionStateLog
from fnworker.scheduler.model.function_state import state_topic
from fnworker.scheduler.model.instances import InstanceSpec

LogKey = tuple[str, int, str]
"""(fqfn, incarnation, state namespace)."""


def state_log_for(spec: InstanceSpec, client: Callable[[], pulsar.Client]) -> FunctionStateLog:
    """A state log of its own for the one instance ``spec`` names (process runtime, pod)."""
    return FunctionStateLog(
        client,
        state_topic(spec.state.namespace, spec.function.fqfn),
        incarnation=spec.function.create_time_ms,
        settings=spec.state,
    )


class StateLogs:
    """The state logs of the function instances in this process, counted by use."""

    def __init__(self, make_client: Callable[[], pulsar.Client]) -> None:
        self._make_client = make_client
        self._client: pulsar.Client | None = None
        self._lock = threading.Lock()
        self._logs: dict[LogKey, tuple[FunctionStateLog, int]] = {}

    def acquire(self, spec: InstanceSpec) -> FunctionStateLog:
        """The log ``spec``'s function shares in this process; release it when done."""
        key = (spec.function.fqfn, spec.function.create_time_ms, spec.state.namespace)
        with self._lock:
            found = self._logs.get(key)
            state_log = found[0] if found else state_log_for(spec, self._state_client)
            self._logs[key] = (state_log, (found[1] if found else 0) + 1)
            return state_log

    def release(self, state_log: FunctionStateLog) -> None:
        """One user fewer; the last one closes the log (blocking, bounded)."""
        with self._lock:
            for key, (held, users) in list(self._logs.items()):
                if held is state_log:
                    if users > 1:
                        self._logs[key] = (held, users - 1)
                        return
                    del self._logs[key]
                    break
            else:
                return
        state_log.close()

    def close_all(self) -> None:
        """Close every log and the state client (blocking)."""
        with self._lock:
            logs = [held for held, _ in self._logs.values()]
            self._logs.clear()
            client, self._client = self._client, None
        for state_log in logs:
            state_log.close()
        if client is not None:
            client.close()

    def _state_client(self) -> pulsar.Client:
        """The client every state log here uses, made on first need."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client
