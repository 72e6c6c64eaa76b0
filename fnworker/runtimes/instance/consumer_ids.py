"""Keeps the consumer ids of different workers apart on pulsar-lite. Blocking I/O
(throw-away consumers) on the instance's own thread.

pulsar-lite keys a subscription's consumers by the client's consumer id, which
every client numbers from 0, so two workers' consumers on one subscription can
clash ("Consumer 0 already exists"); and a consumer whose process was killed
mid-stream stays registered as a ghost under its id (docs/coordination.md), so a
new consumer with that id cannot subscribe. Apache Pulsar keys consumers per
connection and needs none of this, so it is on only where the worker found
pulsar-lite at start (runtimes/broker_kind.py; 16 slots) or
``pulsarLiteConsumerIdSlots`` overrides that: then every consumer this worker creates
gets an id congruent to the worker's slot (a stable hash of its id) modulo the slot
count, by using the ids before it up first. Workers with different slots never
clash. A restarted worker keeps its slot, so each process also starts at a random
block of ids (1 to 8 blocks in): its first consumers do not reuse the ids its killed
predecessor may have left as ghosts.

How ids are used up: one throw-away consumer of as many scratch topics
(``SCRATCH_TOPIC``-0, -1, ...) as ids to skip, closed at once; the client gives each
topic of a multi-topic consumer an id of its own and subscribes them side by side.
It replaced one throw-away reader per id (made one after another): 15 ids cost
2.6 ms instead of 7 ms on pulsar-lite (one run on the shared development VM), and
pulsar-lite kept every closed reader's subscription (~16 KiB of broker memory per
id skipped), where one subscription name reused per client keeps the broker's
memory flat. That name is random per client and process, and Shared, so neither a
killed predecessor's ghost on it nor another worker ever clashes with it.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import threading
from collections.abc import Callable
from typing import TypeVar

import pulsar

T = TypeVar("T")

SCRATCH_TOPIC = "non-persistent://public/default/__fnworker-consumer-ids"
"""The stem of the scratch topics. pulsar-lite keeps state for every closed reader of
a topic: readers made on a function's own input topic slowed every later send to it
(200 sends: 1.1 s after 1,000 closed readers, 3.9 s after 4,000) and each new reader;
on separate non-persistent topics neither grows (0.5 ms a send, 0.4 ms a reader
after 4,000)."""
SKIP_CHUNK = 32
"""At most this many ids are used up by one throw-away consumer (a process's first
subscribe skips up to 9 blocks of ids)."""


def slot_of(worker_id: str, slots: int) -> int:
    """A worker's stable slot among ``slots``."""
    return int.from_bytes(hashlib.sha1(worker_id.encode()).digest()[:4], "big") % slots


def scratch_topics(count: int) -> list[str]:
    """The first ``count`` scratch topics: one per consumer id to use up."""
    return [f"{SCRATCH_TOPIC}-{index}" for index in range(count)]


class ConsumerIdSpreader:
    """Counts the consumer ids one client hands out and steers the next one."""

    def __init__(self, worker_id: str, slots: int, rng: random.Random | None = None) -> None:
        self.worker_id = worker_id
        self.slots = slots
        self.slot = slot_of(worker_id, slots) if slots > 1 else 0
        self.floor = slots * (rng or random.Random()).randint(1, 8) if slots > 1 else 0
        self.next_id = 0
        self.lock = threading.Lock()
        self.subscription = f"__fnworker-consumer-ids-{secrets.token_hex(6)}"

    def sibling(self) -> ConsumerIdSpreader:
        """A spreader for another client of this worker (every client numbers its
        consumers from 0): the same slot, a start block of its own."""
        return ConsumerIdSpreader(self.worker_id, self.slots)

    def subscribe(self, client: pulsar.Client, topics: list[str], subscribe: Callable[[], T]) -> T:
        """Use ids up until the next one is in this worker's slot, then subscribe."""
        with self.lock:
            self.skip(client, self.to_skip())
            try:
                return subscribe()
            finally:
                self.next_id += len(topics)

    def to_skip(self) -> int:
        """How many ids to use up before the next one is this worker's: up to the
        floor, then on to the next id in the slot."""
        if self.slots <= 1:
            return 0
        start = max(self.next_id, self.floor)
        return start - self.next_id + (self.slot - start) % self.slots

    def skip(self, client: pulsar.Client, count: int) -> None:
        """Use up ``count`` consumer ids with throw-away consumers of one scratch topic
        per id, at most ``SKIP_CHUNK`` topics each (blocking; the caller holds the lock)."""
        while count > 0:
            chunk = min(count, SKIP_CHUNK)
            client.subscribe(
                scratch_topics(chunk), self.subscription, consumer_type=pulsar.ConsumerType.Shared
            ).close()
            self.next_id += chunk
            count -= chunk
