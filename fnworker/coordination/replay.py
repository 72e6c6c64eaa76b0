"""Reads a coordination topic from its start to its end at worker start-up, all
of it and never waiting forever. Does I/O (a probe consumer and a reader).

- A call on the reader sometimes never answered: a worker restarted right after
  being killed logged "replaying the metadata topic" and nothing more (seen once
  in about 110 restarts of a loaded pulsar-lite fleet by a scratch script; the same
  symptom as bench/README.md "Open": 3 of 13 bench runs). Which call and why is
  not known. Every call here has a deadline; a reader that misses one is
  abandoned and the replay starts again on a new reader, after a pause. Re-reading
  is safe: records apply idempotently (the first write of each version wins).
- The replay ends at a fixed point, the topic's last entry when it started (from a
  probe consumer's ``get_last_message_id``), instead of asking
  ``has_message_available`` after every record: the earlier loop took any error
  of that call (a timeout as well as pulsar-lite's answer for an empty topic) for
  "nothing more". Records written meanwhile arrive through the same reader later.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

import anyio
import pulsar
import pulsar.asyncio as apulsar
import structlog

from fnworker.scheduler.model.protobuf_fields import protobuf_fields

log = structlog.get_logger("fnworker.coordination")

T = TypeVar("T")

STEP_SECONDS = 10.0
"""How long one call may take. The broker answers in milliseconds; the client's
own operation timeout is 10 s, so a call still pending after that will not answer."""

Position = tuple[int, int]
"""(ledger, entry) of a message: where it sits in the topic, whatever its batch index."""


class ReplayStalled(Exception):
    """A call did not answer within its deadline, or failed."""


async def replay_topic(
    client: apulsar.Client,
    topic: str,
    apply: Callable[[bytes], object],
    *,
    probe_name: str,
    step_seconds: float = STEP_SECONDS,
) -> apulsar.Reader:
    """Apply every record ``topic`` holds now, from its start; return the reader,
    which then delivers what is written later (``replay_from`` without a start)."""
    replayed = await replay_from(
        client,
        topic,
        lambda message: apply(message.data()),
        probe_name=probe_name,
        step_seconds=step_seconds,
    )
    return replayed.reader


class Replayed(NamedTuple):
    """What a start-up replay leaves: the reader (it delivers what is written
    later), the last message applied (or the start, when none was) and how many
    messages were applied."""

    reader: apulsar.Reader
    last: pulsar.MessageId | None
    applied: int


async def replay_from(
    client: apulsar.Client,
    topic: str,
    apply: Callable[[pulsar.Message], object],
    *,
    probe_name: str,
    start: pulsar.MessageId | None = None,
    step_seconds: float = STEP_SECONDS,
) -> Replayed:
    """Apply every message ``topic`` holds now after ``start`` (exclusive; None: from
    its first message), each once (a redelivered message, whose position is not after
    the last one applied, is skipped).

    A failed or stalled attempt is logged and made again with a new reader after a
    pause that grows to 5 s; the new reader starts at ``start`` again and skips what
    was applied already."""
    attempt = 1
    cursor = Cursor(start)
    while True:
        try:
            end = await within(step_seconds, last_position(client, topic, probe_name), "probe")
            reader = await within(
                step_seconds,
                client.create_reader(topic, pulsar.MessageId.earliest if start is None else start),
                "create_reader",
            )
        except (ReplayStalled, apulsar.PulsarException) as error:
            await pause_after(error, topic, attempt)
            attempt += 1
            continue
        try:
            if end is not None:  # an empty topic: nothing to read (and no batch to finish)
                await read_until(
                    reader, cursor.remaining(end), cursor.applying(apply), step_seconds, start
                )
        except (ReplayStalled, apulsar.PulsarException) as error:
            await abandon(reader)
            await pause_after(error, topic, attempt)
            attempt += 1
            continue
        if attempt > 1:
            log.info("replay finished after a stall", topic=topic, attempt=attempt)
        return Replayed(reader=reader, last=cursor.last, applied=cursor.count)


def position_of(message_id: pulsar.MessageId) -> tuple[int, int, int]:
    """(ledger, entry, batch index) of a message: its place in the topic."""
    return (message_id.ledger_id(), message_id.entry_id(), message_id.batch_index())


class Cursor:
    """The last message a reader of one topic applied; skips redeliveries."""

    def __init__(self, start: pulsar.MessageId | None = None) -> None:
        self.last = start
        self.at = position_of(start) if start is not None else (-1, -1, -1)
        self.count = 0

    def remaining(self, end: Position | None) -> Position | None:
        """``end`` if there is anything to read up to it after this cursor, else None."""
        if end is None or end <= self.at[:2]:
            return None
        return end

    def take(self, message: pulsar.Message) -> bool:
        """True (and move on) when ``message`` comes after the last one applied."""
        position = position_of(message.message_id())
        if position <= self.at:
            return False
        self.at, self.last = position, message.message_id()
        self.count += 1
        return True

    def applying(
        self, apply: Callable[[pulsar.Message], object]
    ) -> Callable[[pulsar.Message], object]:
        """``apply`` for the messages this cursor takes; others are skipped."""

        def applied(message: pulsar.Message) -> object:
            return apply(message) if self.take(message) else None

        return applied


async def last_position(client: apulsar.Client, topic: str, probe_name: str) -> Position | None:
    """Where the last message of ``topic`` sits, None for a topic with none yet."""
    last = await last_message_id(client, topic, probe_name)
    if last is None or last.entry_id() < 0:
        return None
    return (last.ledger_id(), last.entry_id())


async def last_message_id(
    client: apulsar.Client, topic: str, probe_name: str
) -> pulsar.MessageId | None:
    """The id of ``topic``'s last message, through a consumer made and removed for it;
    None when pulsar-lite answers its error for a topic with no messages yet."""
    probe = await client.subscribe(topic, probe_name)
    try:
        return await probe.get_last_message_id()
    except apulsar.PulsarException as error:
        if error.error() == pulsar.Result.UnknownError:
            return None
        raise
    finally:
        await probe.unsubscribe()
        await probe.close()


async def read_until(
    reader: apulsar.Reader,
    end: Position | None,
    apply: Callable[[pulsar.Message], object],
    step_seconds: float,
    start: pulsar.MessageId | None = None,
    what: str = "read_next",
) -> int:
    """Apply messages up to and including the entry at ``end`` (None: nothing to
    reach), then the rest of the batch the last one belongs to (the reader's
    ``start`` when it read none); the number read.

    The rest of a batch is read up to its last index (its size travels in the
    serialized message id): ``has_message_available`` right after the first message
    of a batch was seen to answer False on pulsar-lite while the batch's other
    messages were there, and a replay then ended one message into the batch. Only a
    batch of unknown size falls back to asking it."""
    count, position, last = 0, (-1, -1), start
    while end is not None and position < end:
        message = await within(step_seconds, reader.read_next(), f"{what} after {count}")
        apply(message)
        count += 1
        last = message.message_id()
        position = (last.ledger_id(), last.entry_id())
    if last is None or last.batch_index() < 0:
        return count
    batch_last = last_of_batch(last)
    seen = position_of(last)
    while (seen < batch_last) if batch_last is not None else await holds_more(reader):
        message = await within(step_seconds, reader.read_next(), f"{what} after {count}")
        apply(message)
        count += 1
        seen = max(seen, position_of(message.message_id()))
    return count


def last_of_batch(message_id: pulsar.MessageId) -> tuple[int, int, int] | None:
    """The position of the last message of the batch ``message_id`` is in; None when
    its serialized form does not say the batch's size."""
    size = batch_size_of(message_id.serialize())
    if size is None or size <= 0:
        return None
    return (message_id.ledger_id(), message_id.entry_id(), size - 1)


def batch_size_of(serialized: bytes) -> int | None:
    """Field 6 (``batch_size``) of a serialized ``MessageIdData`` protobuf, or None."""
    try:
        fields = protobuf_fields(serialized)
    except ValueError:
        return None
    return next((v for n, v in fields if n == 6 and isinstance(v, int)), None)


async def read_each_once(
    client: apulsar.Client, topic: str, apply: Callable[[bytes], object], what: str
) -> None:
    """Apply every message ``topic`` holds now, from its start to its last entry (and the
    rest of that entry's batch), each once: a message whose position (ledger, entry,
    batch index) is not after the last one applied is a redelivery (pulsar-lite's
    readers may send one again) and is skipped. For the reads an API call makes (state,
    the uploads index): one fresh reader, closed after. Raises ReplayStalled when a call
    misses STEP_SECONDS; ``what`` names the read in that sentence."""
    probe = f"fnworker-{what}-{uuid.uuid4().hex[:12]}"
    end = await within(STEP_SECONDS, last_position(client, topic, probe), f"{what} probe")
    if end is None:
        return
    reader = await within(
        STEP_SECONDS, client.create_reader(topic, pulsar.MessageId.earliest), f"{what} reader"
    )
    cursor = Cursor()
    try:
        await read_until(
            reader,
            end,
            cursor.applying(lambda message: apply(message.data())),
            STEP_SECONDS,
            what=f"{what} read",
        )
    finally:
        await abandon(reader)


async def within(seconds: float, call: Awaitable[T], what: str) -> T:
    """Await ``call`` or raise ReplayStalled naming ``what`` after ``seconds``."""
    with anyio.move_on_after(seconds):
        return await call
    raise ReplayStalled(f"{what} did not answer within {seconds:.0f} s")


async def holds_more(reader: apulsar.Reader) -> bool:
    """Whether the reader has more messages of the batch it is in (an error: no)."""
    try:
        return bool(await reader.has_message_available())
    except apulsar.PulsarException:
        return False


async def pause_after(error: Exception, topic: str, attempt: int) -> None:
    """Log a failed replay attempt and wait before the next one."""
    log.warning(
        "replay stalled; reading again with a new reader",
        topic=topic,
        attempt=attempt,
        detail=str(error),
    )
    await anyio.sleep(min(0.5 * attempt, 5.0))


async def abandon(reader: apulsar.Reader) -> None:
    """Close a stalled reader, giving up on the close itself after a second."""
    with anyio.move_on_after(1.0):
        try:
            await reader.close()
        except apulsar.PulsarException:
            pass
