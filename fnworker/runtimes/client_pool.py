"""Which pulsar client each thread-runtime instance uses, and ending clients and
other blocking work within a bound. ``client_key_for`` is pure; ``ClientPool``
creates and closes clients (broker I/O on the calling thread, never the event loop).

Why not one client for every instance: a client has one connection per broker, and
everything on it queues behind everything else. A function subscribing to 2,000
topics kept the shared connection busy for 10.5 s (a 10 ms ping on it stalled that
long; on a client of its own, the same ping's worst case was 0.7 s), and pulsar-lite
tears down a whole connection for one refused command. Why not a client per
function: each costs ~236 KiB, 3 threads and a connection (measured with 50
functions), 3,000 threads for 1,000 functions. So:

- a function with more than ``DEDICATED_ABOVE_TOPICS`` input topics gets a client of
  its own, closed as soon as its last instance here stops (a deleted heavy function
  leaves nothing behind, and closing it also ends a subscribe still in progress);
- every other function shares one of ``SHARED_CLIENTS`` clients, chosen by a stable
  hash of its name (all instances of a function on one client), kept until the
  runtime closes.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

import msgspec
import pulsar

from fnworker.runtimes.instance.consumer_ids import ConsumerIdSpreader

SHARED_CLIENTS = 4
DEDICATED_ABOVE_TOPICS = 10
CLOSE_SECONDS = 1.0


class ClientKey(msgspec.Struct, frozen=True, kw_only=True):
    """A client of the pool: ``shared-N``, or ``function:<fqfn>`` (dedicated)."""

    name: str
    dedicated: bool


def client_key_for(
    fqfn: str,
    input_topics: int,
    *,
    shared_clients: int = SHARED_CLIENTS,
    dedicated_above: int = DEDICATED_ABOVE_TOPICS,
) -> ClientKey:
    """The client a function's instances use."""
    if input_topics > dedicated_above:
        return ClientKey(name=f"function:{fqfn}", dedicated=True)
    digest = hashlib.sha1(fqfn.encode()).digest()
    slot = int.from_bytes(digest[:4], "big") % max(1, shared_clients)
    return ClientKey(name=f"shared-{slot}", dedicated=False)


def run_bounded(work: Callable[[], object], seconds: float, name: str) -> bool:
    """Run ``work`` on a daemon thread and wait at most ``seconds``; False if it is
    still running then (it is abandoned: a daemon thread never holds up exit)."""
    thread = threading.Thread(target=_quietly, args=(work,), name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def _quietly(work: Callable[[], object]) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001, S110 - closing is best effort; the caller logs a timeout
        pass


class PooledClient:
    """One client of the pool, its consumer-id spreader and how many instances use it."""

    def __init__(self, client: pulsar.Client, consumer_ids: ConsumerIdSpreader | None) -> None:
        self.client = client
        self.consumer_ids = consumer_ids
        self.users = 0


class ClientLease:
    """An instance's use of a pooled client; ``release`` is idempotent."""

    def __init__(self, pool: ClientPool, key: ClientKey, pooled: PooledClient) -> None:
        self.pool = pool
        self.key = key
        self.client = pooled.client
        self.consumer_ids = pooled.consumer_ids
        self.released = False

    def release(self) -> pulsar.Client | None:
        """Stop using the client; the client to close (bounded, by the caller) when
        this was the last user of a dedicated one."""
        return self.pool.release(self)


class ClientPool:
    """The clients of one thread runtime (thread-safe; creating a client does not
    connect, closing one does I/O and belongs on a worker thread)."""

    def __init__(
        self,
        make: Callable[[], pulsar.Client],
        consumer_ids: ConsumerIdSpreader | None = None,
    ) -> None:
        self.make = make
        self.consumer_ids = consumer_ids
        self._clients: dict[ClientKey, PooledClient] = {}
        self._lock = threading.Lock()

    def lease(self, key: ClientKey) -> ClientLease:
        """Use the client ``key``, creating it on first use."""
        with self._lock:
            pooled = self._clients.get(key)
            if pooled is None:
                spreader = self.consumer_ids.sibling() if self.consumer_ids else None
                pooled = self._clients[key] = PooledClient(self.make(), spreader)
            pooled.users += 1
            return ClientLease(self, key, pooled)

    def release(self, lease: ClientLease) -> pulsar.Client | None:
        """One user fewer (once per lease); a dedicated client without users leaves the
        pool and is returned."""
        key = lease.key
        with self._lock:
            pooled = self._clients.get(key)
            if lease.released or pooled is None:
                return None
            lease.released = True
            pooled.users -= 1
            if pooled.users > 0 or not key.dedicated:
                return None
            del self._clients[key]
            return pooled.client

    def names(self) -> list[str]:
        """The clients open now (for logs and tests)."""
        with self._lock:
            return sorted(key.name for key in self._clients)

    def close_all(self, seconds: float) -> list[str]:
        """Close every client at once, waiting at most ``seconds`` in all; the names
        of those still closing then (abandoned)."""
        with self._lock:
            clients, self._clients = dict(self._clients), {}
        threads = {
            key.name: threading.Thread(
                target=_quietly, args=(pooled.client.close,), name=f"close {key.name}", daemon=True
            )
            for key, pooled in clients.items()
        }
        for thread in threads.values():
            thread.start()
        deadline = time.monotonic() + seconds
        for thread in threads.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        return sorted(name for name, thread in threads.items() if thread.is_alive())
