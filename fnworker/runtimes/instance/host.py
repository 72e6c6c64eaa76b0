"""Hosts one function instance in this process: ``open()`` loads the code and
subscribes, ``start()`` runs the message loop on a daemon thread of its own,
``request_stop()``/``join()``/``close()`` end it. Does broker and file I/O and runs
user code; ``open``, ``join`` and ``close`` block and belong on a worker thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec
import pulsar
import structlog

from fnworker.runtimes.instance.consumer_ids import ConsumerIdSpreader
from fnworker.runtimes.instance.context import (
    COMPRESSION,
    InstanceContext,
    Producers,
    producer_properties,
)
from fnworker.runtimes.instance.instance_plan import InstancePlan, PlanError, plan_instance
from fnworker.runtimes.instance.loader import LoadedFunction, load_function
from fnworker.runtimes.instance.message_loop import MessageLoop
from fnworker.runtimes.instance.output_sink import OutputSink
from fnworker.runtimes.instance.package_layout import PackageError
from fnworker.runtimes.instance.progress import describe_stall, stall_of
from fnworker.runtimes.instance.secret_providers import secrets_provider_named
from fnworker.runtimes.instance.serde import make_serde
from fnworker.runtimes.instance.state_log import FunctionStateLog
from fnworker.runtimes.instance.stats import InstanceStats, describe
from fnworker.scheduler.model.clock import SYSTEM_CLOCK, Clock
from fnworker.scheduler.model.instances import InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import InstanceStatusData

SUBSCRIPTION_TYPES = {
    "SHARED": pulsar.ConsumerType.Shared,
    "FAILOVER": pulsar.ConsumerType.Failover,
    "KEY_SHARED": pulsar.ConsumerType.KeyShared,
}
POSITIONS = {"Latest": pulsar.InitialPosition.Latest, "Earliest": pulsar.InitialPosition.Earliest}
_starts = itertools.count(1)
DEFAULT_RECEIVER_QUEUE = 1000  # the client's default receiver_queue_size
MAX_QUEUE_GROWTH = 8
RESUME_HINT_FILE = ".fnworker-last-received"


class OpenTimes(msgspec.Struct, frozen=True, kw_only=True):
    """How long the steps of opening an instance took, in milliseconds: loading the
    code, waiting for and using up consumer ids (pulsar-lite only), subscribing,
    and creating the output producer."""

    load_ms: float = 0.0
    ids_ms: float = 0.0
    subscribe_ms: float = 0.0
    output_ms: float = 0.0


def ms(seconds: float) -> float:
    """Seconds as milliseconds, to 0.1 ms (for log lines)."""
    return round(seconds * 1000, 1)


class InstanceStartError(Exception):
    """The instance could not start; ``str()`` is one sentence for its status."""


class InstanceFields(logging.Filter):
    """Stamps ``function`` and ``instance`` on every record of a function's logger."""

    def __init__(self, function: str, instance: str) -> None:
        super().__init__()
        self.function = function
        self.instance = instance

    def filter(self, record: logging.LogRecord) -> bool:
        record.function = self.function
        record.instance = self.instance
        return True


def user_logger(function: str, instance: str) -> logging.Logger:
    """The stdlib logger ``context.get_logger()`` returns for one instance."""
    logger = logging.getLogger(f"fnworker.function.{instance}")
    for old in [f for f in logger.filters if isinstance(f, InstanceFields)]:
        logger.removeFilter(old)
    logger.addFilter(InstanceFields(function, instance))
    return logger


class InstanceHost:
    """One instance of a function, run by the thread runtime."""

    def __init__(
        self,
        spec: InstanceSpec,
        client: pulsar.Client,
        state: FunctionStateLog,
        *,
        thread_name: str,
        nack_redelivery_delay_ms: int = 1000,
        consumer_ids: ConsumerIdSpreader | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self.consumer_ids = consumer_ids
        self.spec = spec
        self.client = client
        self.state = state
        self.thread_name = thread_name
        self.nack_redelivery_delay_ms = nack_redelivery_delay_ms
        self.stats = InstanceStats()
        self.error = ""
        self.log = structlog.get_logger("fnworker.instance").bind(
            function=spec.function.fqfn, instance=spec.instance, version=spec.function.version
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._code: LoadedFunction | None = None
        self._consumer: pulsar.Consumer | None = None
        self._producers: Producers | None = None
        self._loop: MessageLoop | None = None
        self._queue_growth = 1
        self._ids_seconds = 0.0
        self.open_ms = OpenTimes()
        """How long each step of the last ``open`` took (logged when the instance starts)."""

    # -- lifecycle -----------------------------------------------------------

    def open(self) -> None:
        """Load the code and subscribe (blocking); InstanceStartError with one sentence."""
        try:
            self._open()
        except InstanceStartError:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise InstanceStartError(f"starting the instance failed: {describe(error)}") from error

    def start(self) -> None:
        """Run the message loop on a daemon thread named after the instance."""
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the loop to finish; it notices within about 100 ms."""
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait for the loop thread to end (blocking); False if it is still running."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        """Close the consumer and producers and unload the code (blocking, idempotent)."""
        self._keep_resume_hint()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except Exception as error:  # noqa: BLE001 - closing is best effort
                self.log.debug("closing the consumer failed", error=describe(error))
        if self._producers is not None:
            self._producers.close_all()
        code, self._code = self._code, None
        if code is not None:
            code.unload()

    def _resume_hint_file(self) -> Path:
        """Where a stopped run leaves the position it received last, for the next run of
        this instance and version (the worker empties the folder for a new start)."""
        return self.spec.package_path.parent / RESUME_HINT_FILE

    def _keep_resume_hint(self) -> None:
        """Write ``<topic> <ledger> <entry>`` of the last message received (best effort)."""
        loop = self._loop
        last = loop.last_received() if loop is not None and loop.probe_backlog else None
        if last is None:
            return
        try:
            topic = next(iter(loop.serdes)) if loop is not None else ""
            self._resume_hint_file().write_text(f"{topic} {last[0]} {last[1]}\n")
        except OSError as error:
            self.log.debug("keeping the last received position failed", error=str(error))

    def _read_resume_hint(self, plan: InstancePlan) -> tuple[int, int] | None:
        """The position a previous run of this instance received last, if it left one."""
        try:
            topic, ledger, entry = self._resume_hint_file().read_text().split()
        except (OSError, ValueError):
            return None
        if topic not in plan.inputs.serde_by_topic:
            return None
        return int(ledger), int(entry)

    @property
    def running(self) -> bool:
        """True while the loop thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> InstanceStatusData:
        """Counters and state in Pulsar's status shape; ``error`` also says why a
        running instance makes no progress (fnworker/runtimes/instance/progress.py)."""
        running = self.running
        error = self.error or (self.stall_description() if running else "")
        return self.stats.status(running=running, error=error, worker_id=self.spec.worker_id)

    def metrics(self) -> InstanceMetrics:
        """Counters in Pulsar's metrics shape, with how long the instance has stalled."""
        metrics = self.stats.metrics()
        if self._loop is not None and self.running:
            stall = stall_of(self._loop.marks, self.clock.now())
            metrics.stalled_seconds = stall.seconds if stall is not None else 0.0
        return metrics

    def stall_description(self) -> str:
        """One sentence when the running loop makes no progress, else empty."""
        if self._loop is None:
            return ""
        marks = self._loop.marks
        stall = stall_of(marks, self.clock.now())
        if stall is None:
            return ""
        where = self.where_stuck() if stall.kind == "busy" else ""
        return describe_stall(stall, where=where, last_seen=marks.last_seen)

    def where_stuck(self) -> str:
        """Where the loop thread is right now: the innermost Python frame (only
        looked at when the instance is stuck)."""
        thread = self._thread
        frame = sys._current_frames().get(thread.ident or -1) if thread else None
        if frame is None:
            return ""
        code = frame.f_code
        return f"at {os.path.basename(code.co_filename)}:{frame.f_lineno} in {code.co_name}"

    # -- opening -------------------------------------------------------------

    def _open(self) -> None:
        spec = self.spec
        began = self.clock.now()
        try:
            plan = plan_instance(spec.function)
            tag = f"{plan.fqfn}:{spec.index}:v{spec.function.version}:{next(_starts)}"
            self._code = load_function(spec.package_path, plan.class_name, tag, spec.package_limits)
            serdes = {t: make_serde(n, self._code) for t, n in plan.inputs.serde_by_topic.items()}
            output_serde = make_serde(plan.output.serde, self._code)
            secrets = secrets_provider_named(spec.secrets_provider)
        except (PackageError, PlanError) as error:
            raise InstanceStartError(str(error)) from None
        loaded = self.clock.now()
        self._consumer = self._subscribe(plan)
        subscribed = self.clock.now()
        self._producers = Producers(self.client, producer_properties(plan.fqfn, spec.index))
        output = self._output(plan, output_serde) if plan.output.topic else None
        self.open_ms = OpenTimes(
            load_ms=ms(loaded - began),
            ids_ms=ms(self._ids_seconds),
            subscribe_ms=ms(subscribed - loaded - self._ids_seconds),
            output_ms=ms(self.clock.now() - subscribed),
        )
        context = InstanceContext(
            plan=plan,
            record=spec.function,
            index=spec.index,
            code=self._code,
            consumer=self._consumer,
            producers=self._producers,
            state=self.state,
            stats=self.stats,
            logger=user_logger(plan.fqfn, spec.instance),
            secrets=secrets,
        )
        self._loop = MessageLoop(
            consumer=self._consumer,
            handler=self._code.handler,
            takes_context=self._code.takes_context,
            context=context,
            serdes=serdes,
            output=output,
            producers=self._producers,
            ack_mode=plan.ack_mode,
            stats=self.stats,
            stop=self._stop,
            log=self.log,
            probe_backlog=len(plan.inputs.topics) == 1 and spec.function.parallelism() == 1,
            resubscribe=lambda: self._resubscribe(plan),
            resume_hint=self._read_resume_hint(plan),
            clock=self.clock,
        )

    def _resubscribe(self, plan: InstancePlan) -> pulsar.Consumer:
        """A second consumer on the subscription, for the message loop to switch to (it
        closes the stalled one), with a receive queue twice as long as before, up to
        ``MAX_QUEUE_GROWTH`` times the configured one: more permits outstanding outweigh
        the permit deficit a pulsar-lite Shared subscription keeps from consumers that
        left (docs/instance-host.md)."""
        self._queue_growth = min(self._queue_growth * 2, MAX_QUEUE_GROWTH)
        consumer = self._subscribe(plan)
        self._consumer = consumer
        return consumer

    def _subscribe(self, plan: InstancePlan) -> pulsar.Consumer:
        """Subscribe to every input topic with one consumer."""
        inputs = plan.inputs
        options: dict[str, Any] = {
            "consumer_type": SUBSCRIPTION_TYPES[inputs.subscription_type],
            "initial_position": POSITIONS[inputs.position],
            "negative_ack_redelivery_delay_ms": self.nack_redelivery_delay_ms,
            "properties": producer_properties(plan.fqfn, self.spec.index),
        }
        if inputs.receiver_queue_size or self._queue_growth > 1:
            queue = inputs.receiver_queue_size or DEFAULT_RECEIVER_QUEUE
            options["receiver_queue_size"] = queue * self._queue_growth
        if inputs.ack_timeout_ms:
            options["unacked_messages_timeout_ms"] = inputs.ack_timeout_ms
        if inputs.max_message_retries:
            options["dead_letter_policy"] = pulsar.ConsumerDeadLetterPolicy(
                max_redeliver_count=inputs.max_message_retries,
                dead_letter_topic=inputs.dead_letter_topic,
            )
        topics = list(inputs.topics)

        def subscribe() -> pulsar.Consumer:
            return self.client.subscribe(
                topics if len(topics) > 1 else topics[0], inputs.subscription, **options
            )

        asked = self.clock.now()

        def subscribe_now() -> pulsar.Consumer:
            self._ids_seconds = self.clock.now() - asked
            return subscribe()

        try:
            if self.consumer_ids is None:
                return subscribe()
            return self.consumer_ids.subscribe(self.client, topics, subscribe_now)
        except Exception as error:  # noqa: BLE001 - any failure becomes the status error
            raise InstanceStartError(
                f"subscribing to {', '.join(topics)} as '{inputs.subscription}' failed: "
                f"{describe(error)}"
            ) from None

    def _output(self, plan: InstancePlan, serde: Any) -> OutputSink:
        """The producer for the output topic (named and sequenced for EFFECTIVELY_ONCE)."""
        assert self._producers is not None and plan.output.topic is not None
        options: dict[str, Any] = {}
        if plan.output.key_based_batching:
            options["batching_type"] = pulsar.BatchingType.KeyBased
        sequenced = plan.ack_mode == "EFFECTIVELY_ONCE"
        if sequenced:
            options["producer_name"] = f"{plan.fqfn}-{self.spec.index}"
        compression = COMPRESSION.get(plan.output.compression, pulsar.CompressionType.LZ4)
        try:
            producer = self._producers.for_topic(plan.output.topic, compression, **options)
        except Exception as error:  # noqa: BLE001 - any failure becomes the status error
            raise InstanceStartError(
                f"creating the producer for output topic {plan.output.topic} failed: "
                f"{describe(error)}"
            ) from None
        return OutputSink(
            producer, serde, forward_properties=plan.output.forward_properties, sequenced=sequenced
        )

    # -- the thread ------------------------------------------------------------

    def _run(self) -> None:
        structlog.contextvars.bind_contextvars(
            function=self.spec.function.fqfn, instance=self.spec.instance
        )
        assert self._loop is not None
        try:
            self._loop.run()
        except BaseException as error:
            self.error = f"the message loop stopped: {describe(error)}"
            self.stats.record_system_exception(error)
            self.log.error("instance message loop stopped", error=describe(error), exc_info=error)
