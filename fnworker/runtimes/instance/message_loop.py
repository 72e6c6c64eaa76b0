"""The hot loop of one instance: receive → deserialize → call user code → publish →
acknowledge, with the sync pulsar client on the instance's own thread. Does broker
I/O and runs user code.

Throughput design (docs/instance-host.md): no Python callback per message.
Handled inputs gather in a *window*. A window closes after ``WINDOW_MESSAGES``
messages or ``WINDOW_SECONDS``: its last result is sent with a ``WindowReceipt``
that acknowledges every input of the window once the broker has persisted the
sends (outputs are persisted in send order). A window that closes while the
consumer is idle, or that holds ``context.publish`` sends, is settled by a
blocking ``flush()`` instead. Either way an input is acknowledged only after its
results are persisted, and negatively acknowledged if they were not.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pulsar
import structlog

from fnworker.runtimes.instance.context import InstanceContext, Producers
from fnworker.runtimes.instance.instance_plan import AckMode, base_topic_name
from fnworker.runtimes.instance.output_sink import (
    OutputSink,
    Outstanding,
    WindowReceipt,
    fail_window,
    settle,
)
from fnworker.runtimes.instance.progress import (
    ProgressMarks,
    connection_check_due,
    has_backlog,
    note_backlog,
    note_connected,
    note_idle,
    note_recovery,
    recovery_due,
)
from fnworker.runtimes.instance.serde import SerDe
from fnworker.runtimes.instance.stats import InstanceStats, describe
from fnworker.scheduler.model.clock import SYSTEM_CLOCK, Clock

IDLE_RECEIVE_MS = 100
WINDOW_MESSAGES = 1000
WINDOW_SECONDS = 0.005
DRAIN_SECONDS = 10.0
FAILURE_LOGS_PER_SECOND = 5


class MessageLoop:
    """Processes messages until ``stop`` is set; never lets user code end the loop."""

    def __init__(
        self,
        *,
        consumer: pulsar.Consumer,
        handler: Callable[..., Any],
        takes_context: bool,
        context: InstanceContext,
        serdes: dict[str, SerDe],
        output: OutputSink | None,
        producers: Producers,
        ack_mode: AckMode,
        stats: InstanceStats,
        stop: threading.Event,
        log: structlog.stdlib.BoundLogger,
        probe_backlog: bool = False,
        resubscribe: Callable[[], pulsar.Consumer] | None = None,
        resume_hint: tuple[int, int] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.now = clock.now
        """Where every timeout and progress mark of the loop reads the time."""
        self.consumer = consumer
        self.handler = handler
        self.takes_context = takes_context
        self.context = context
        self.serdes = serdes
        self.output = output
        self.producers = producers
        self.stats = stats
        self.stop = stop
        self.log = log
        self.ack_on_receipt = ack_mode == "ATMOST_ONCE"
        self.ack_after_publish = ack_mode in ("ATLEAST_ONCE", "EFFECTIVELY_ONCE")
        self.nack_on_failure = ack_mode != "ATMOST_ONCE"
        self.outstanding = Outstanding()
        self.window_acks: list[pulsar.Message] = []
        self.window_done = 0
        self.window_deadline = 0.0
        self.failure_window = (0.0, 0)
        self.marks = ProgressMarks(self.now())
        self.probe_backlog = probe_backlog
        self.resubscribe = resubscribe
        self.resume_hint = resume_hint

    def run(self) -> None:
        """Loop until asked to stop, then settle the open window and wait for receipts."""
        try:
            while not self.stop.is_set():
                self.step()
        finally:
            self.flush()
            if not self.outstanding.wait_idle(DRAIN_SECONDS):
                self.log.warning(
                    "publish receipts still outstanding at stop; inputs will be redelivered"
                )

    def step(self) -> None:
        """Receive and handle one message; settle the window when the consumer idles."""
        try:
            message = self.consumer.receive(self.receive_timeout_ms())
        except pulsar.Timeout:
            now = self.now()
            if self.window_done and now >= self.window_deadline:
                self.flush()
            self.on_idle(now)
            return
        self.handle(message)

    def on_idle(self, now: float) -> None:
        """Between messages: leave progress marks, look at the connection and, when
        idle for a while, at whether the broker holds input it does not deliver."""
        marks = self.marks
        note_idle(marks, now, self.stats.received)
        if connection_check_due(marks, now):
            note_connected(marks, now, self.consumer.is_connected())
        if self.probe_backlog and now >= marks.next_backlog_check:
            note_backlog(marks, self.now(), self.backlog())
            if self.resubscribe is not None and recovery_due(marks):
                self.recover()

    def recover(self) -> None:
        """The broker holds input after the last message received and delivers none:
        settle the window and subscribe again (a fresh consumer asks for a full receive
        queue), then close the stalled consumer. Works around pulsar-lite's
        Shared-subscription permit stall (docs/instance-host.md, "The stall"). If the
        new subscribe fails, the stalled consumer stays and status shows the stall."""
        assert self.resubscribe is not None
        self.log.warning(
            "the broker holds input after the last message received but delivers none; "
            "subscribing again",
            last_received=self.marks.last_seen,
        )
        self.marks.resubscribing_since = self.now()
        self.flush()
        self.outstanding.wait_idle(DRAIN_SECONDS)
        try:
            fresh = self.resubscribe()
        except Exception as error:  # noqa: BLE001 - keep the consumer we have
            note_recovery(self.marks, self.now(), failed=True)
            self.log.warning("subscribing again failed", error=describe(error))
            return
        note_recovery(self.marks, self.now())
        stalled, self.consumer = self.consumer, fresh
        self.context.consumer = fresh
        try:
            stalled.close()
        except Exception as error:  # noqa: BLE001 - the stalled consumer is dropped either way
            self.log.debug("closing the stalled consumer failed", error=describe(error))

    def last_received(self) -> tuple[int, int] | None:
        """(ledger, entry) of the last message received, or of the one this instance's
        previous run received last (``resume_hint``), or None."""
        message = self.context.message
        if message is None:
            return self.resume_hint
        position = message.message_id()
        return (position.ledger_id(), position.entry_id())

    def backlog(self) -> bool | None:
        """Whether the input topic holds entries after the last message received
        (None: nothing received yet, or no answer). One broker round trip."""
        mine = self.last_received()
        if mine is None:
            return None
        self.marks.checking_since = self.now()
        try:
            last = self.consumer.get_last_message_id()
        except Exception as error:  # noqa: BLE001 - no answer is no information
            self.log.debug("backlog check failed", error=describe(error))
            return None
        finally:
            self.marks.checking_since = None
        self.marks.last_seen = f"entry {mine[0]}:{mine[1]}"
        return has_backlog((last.ledger_id(), last.entry_id()), mine)

    def receive_timeout_ms(self) -> int:
        """Wait long when idle, only until the window is due when one is open."""
        if not self.window_done:
            return IDLE_RECEIVE_MS
        return max(1, math.ceil((self.window_deadline - self.now()) * 1000))

    def handle(self, message: pulsar.Message) -> None:
        """Run one message through the user's code and send its result."""
        stats = self.stats
        if time.perf_counter() >= stats.next_mark:
            stats.mark(time.perf_counter())
        stats.received += 1
        topic = message.topic_name()
        if self.ack_on_receipt:
            self.consumer.acknowledge(message)
        try:
            value = self.serde_for(topic).deserialize(message.data())
        except Exception as error:  # noqa: BLE001 - a bad payload is a system failure
            self.fail(message, error, user=False, what="deserializing the input failed")
            return
        self.context.message = message
        stats.last_invocation_ms = int(time.time() * 1000)
        started = time.perf_counter()
        try:
            result = (
                self.handler(value, self.context) if self.takes_context else self.handler(value)
            )
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - user code must never end the loop
            self.fail(message, error, user=True, what="the function raised")
            return
        stats.latency_total_ms += (time.perf_counter() - started) * 1000.0
        stats.latency_count += 1
        if result is None or self.output is None:
            self.add_to_window(message)
        elif self.window_due():
            self.send_closing(result, message, topic)
        else:
            self.send(result, message, topic)

    def serde_for(self, topic: str) -> SerDe:
        """The input serde of a topic (partitions share their topic's serde)."""
        serde = self.serdes.get(topic)
        if serde is None:
            serde = self.serdes.get(base_topic_name(topic)) or next(iter(self.serdes.values()))
            self.serdes[topic] = serde
        return serde

    def window_due(self) -> bool:
        """True when this message should close the window (and no context sends are pending)."""
        if self.producers.dirty:
            return False
        done = self.window_done
        return done + 1 >= WINDOW_MESSAGES or (done > 0 and self.now() >= self.window_deadline)

    def send(self, result: Any, message: pulsar.Message, topic: str) -> None:
        """Send a result without a receipt; its input waits in the window."""
        assert self.output is not None
        try:
            self.output.send(result, message, topic, None)
        except Exception as error:  # noqa: BLE001 - serialize/publish failure
            self.fail(message, error, user=False, what="publishing the result failed")
            return
        self.add_to_window(message)

    def send_closing(self, result: Any, message: pulsar.Message, topic: str) -> None:
        """Send the window's last result with a receipt that settles the whole window."""
        assert self.output is not None
        acks = [*self.window_acks, message] if self.ack_after_publish else []
        receipt = WindowReceipt(
            self.consumer, acks, self.window_done + 1, self.stats, self.outstanding
        )
        try:
            self.output.send(result, message, topic, receipt)
        except Exception as error:  # noqa: BLE001 - nothing was sent for this message
            self.outstanding.done()
            self.fail(message, error, user=False, what="publishing the result failed")
            return
        self.window_acks, self.window_done = [], 0

    def add_to_window(self, message: pulsar.Message) -> None:
        """Put a handled message in the window; settle it at once when it is due."""
        if self.ack_after_publish:
            self.window_acks.append(message)
        now = self.now()
        self.marks.active_at = now
        if not self.window_done:
            self.window_deadline = now + WINDOW_SECONDS
        self.window_done += 1
        if self.window_done >= WINDOW_MESSAGES or now >= self.window_deadline:
            self.flush()

    def flush(self) -> None:
        """Settle the open window by flushing the producers (blocking)."""
        acks, done = self.window_acks, self.window_done
        self.window_acks, self.window_done = [], 0
        try:
            if self.output is not None:
                self.output.flush()
            self.producers.flush_dirty()
        except Exception as error:  # noqa: BLE001 - a failed flush fails the window
            fail_window(self.consumer, acks, done, self.stats, error)
            self.log_failure("flushing the producers failed; inputs will be redelivered", error)
            return
        if done:
            settle(self.consumer, acks, done, self.stats)

    def fail(self, message: pulsar.Message, error: BaseException, *, user: bool, what: str) -> None:
        """Count and log a failed message and hand it back per the guarantee."""
        if user:
            self.stats.record_user_exception(error)
        else:
            self.stats.record_system_exception(error)
        self.log_failure(what, error)
        if self.nack_on_failure:
            self.consumer.negative_acknowledge(message)

    def log_failure(self, what: str, error: BaseException) -> None:
        """Log with a traceback, at most a few times per second per instance."""
        now = self.now()
        self.marks.active_at = now
        started, count = self.failure_window
        if now - started >= 1.0:
            started, count = now, 0
        self.failure_window = (started, count + 1)
        if count < FAILURE_LOGS_PER_SECOND:
            self.log.warning(what, error=describe(error), exc_info=error)
