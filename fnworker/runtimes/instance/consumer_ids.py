"""Keeps the consumer ids of different workers apart on pulsar-lite. Blocking I/O
(throw-away readers) on the instance's own thread.

pulsar-lite keys a subscription's consumers by the client's consumer id, which
every client numbers from 0, so two workers' consumers on one subscription can
clash ("Consumer 0 already exists"); and a consumer whose process was killed
mid-stream stays registered as a ghost under its id (docs/coordination.md), so a
new consumer with that id cannot subscribe. Apache Pulsar keys consumers per
connection and needs none of this, so it is on only where the worker found
pulsar-lite at start (runtimes/broker_kind.py; 16 slots) or
``pulsarLiteConsumerIdSlots`` overrides that: then every consumer this worker creates
gets an id congruent to the worker's slot (a stable hash of its id) modulo the slot
count, by creating and closing throw-away readers (on ``SCRATCH_TOPIC``) first.
Workers with different slots never clash. A restarted worker keeps its slot, so
each process also starts at a random block of ids (1 to 8 blocks in): its first
consumers do not reuse the ids its killed predecessor may have left as ghosts.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Callable
from typing import TypeVar

import pulsar

T = TypeVar("T")

SCRATCH_TOPIC = "non-persistent://public/default/__fnworker-consumer-ids"
"""Where the throw-away readers are made. pulsar-lite keeps state for every closed
reader of a topic: readers made on a function's own input topic slowed every later
send to it (200 sends: 1.1 s after 1,000 closed readers, 3.9 s after 4,000) and
each new reader; on a separate non-persistent topic neither grows (0.5 ms a send,
0.4 ms a reader after 4,000). Each closed reader still costs the broker ~17 KiB."""


def slot_of(worker_id: str, slots: int) -> int:
    """A worker's stable slot among ``slots``."""
    return int.from_bytes(hashlib.sha1(worker_id.encode()).digest()[:4], "big") % slots


class ConsumerIdSpreader:
    """Counts the consumer ids one client hands out and steers the next one."""

    def __init__(self, worker_id: str, slots: int, rng: random.Random | None = None) -> None:
        self.worker_id = worker_id
        self.slots = slots
        self.slot = slot_of(worker_id, slots) if slots > 1 else 0
        self.floor = slots * (rng or random.Random()).randint(1, 8) if slots > 1 else 0
        self.next_id = 0
        self.lock = threading.Lock()

    def sibling(self) -> ConsumerIdSpreader:
        """A spreader for another client of this worker (every client numbers its
        consumers from 0): the same slot, a start block of its own."""
        return ConsumerIdSpreader(self.worker_id, self.slots)

    def subscribe(self, client: pulsar.Client, topics: list[str], subscribe: Callable[[], T]) -> T:
        """Burn ids until the next one is in this worker's slot, then subscribe."""
        with self.lock:
            if self.slots > 1:
                while self.next_id < self.floor or self.next_id % self.slots != self.slot:
                    client.create_reader(SCRATCH_TOPIC, pulsar.MessageId.latest).close()
                    self.next_id += 1
            try:
                return subscribe()
            finally:
                self.next_id += len(topics)
