"""The ``context`` a Pulsar Function receives: every method of
``pulsar.functions.context.Context`` for one instance. Reads the current message,
the function's identity and config; publishes, acknowledges and keeps state and
metrics. Does broker I/O through the shared client (producers created on first
publish to a topic).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pulsar
from pulsar.functions.context import Context

from fnworker.runtimes.instance.instance_plan import InstancePlan, base_topic_name
from fnworker.runtimes.instance.loader import LoadedFunction
from fnworker.runtimes.instance.secret_providers import SecretsProvider
from fnworker.runtimes.instance.serde import SerDe, make_serde
from fnworker.runtimes.instance.state_log import FunctionStateLog
from fnworker.runtimes.instance.stats import InstanceStats
from fnworker.scheduler.model.function_state import StateError
from fnworker.scheduler.model.records import FunctionRecord

COMPRESSION = {
    "NONE": pulsar.CompressionType.NONE,
    "LZ4": pulsar.CompressionType.LZ4,
    "ZLIB": pulsar.CompressionType.ZLib,
    "ZSTD": pulsar.CompressionType.ZSTD,
    "SNAPPY": pulsar.CompressionType.SNAPPY,
}
log = logging.getLogger("fnworker.instance")


def producer_properties(fqfn: str, index: int) -> dict[str, str]:
    """The properties Pulsar puts on a function's producers and consumers."""
    return {"application": "pulsar-function", "id": fqfn, "instance_id": str(index)}


class Producers:
    """Producers of one instance, one per topic, and which of them await a flush."""

    def __init__(self, client: pulsar.Client, properties: dict[str, str]) -> None:
        self.client = client
        self.properties = properties
        self.by_topic: dict[str, pulsar.Producer] = {}
        self.dirty: set[pulsar.Producer] = set()
        self._lock = threading.Lock()

    def for_topic(self, topic: str, compression: Any = None, **options: Any) -> pulsar.Producer:
        """The producer for ``topic``, created (batching on) on first use."""
        producer = self.by_topic.get(topic)
        if producer is None:
            with self._lock:
                producer = self.by_topic.get(topic) or self.create(topic, compression, options)
        return producer

    def create(self, topic: str, compression: Any, options: dict[str, Any]) -> pulsar.Producer:
        """Create and cache a producer (batching on: pulsar-lite duplicates unbatched bursts)."""
        producer = self.client.create_producer(
            topic,
            batching_enabled=True,
            batching_max_publish_delay_ms=10,
            block_if_queue_full=True,
            max_pending_messages=10_000,
            compression_type=compression
            if compression is not None
            else pulsar.CompressionType.NONE,
            properties=self.properties,
            **options,
        )
        self.by_topic[topic] = producer
        return producer

    def flush_dirty(self) -> None:
        """Wait until everything sent since the last flush is persisted (raises if not)."""
        while self.dirty:
            self.dirty.pop().flush()

    def close_all(self) -> None:
        """Close every producer, ignoring failures (the instance is going away)."""
        for producer in list(self.by_topic.values()):
            try:
                producer.close()
            except Exception as error:  # noqa: BLE001 - closing is best effort
                log.debug("closing a producer failed: %s", error)
        self.by_topic.clear()
        self.dirty.clear()


class InstanceContext(Context):  # type: ignore[misc]
    """Pulsar's Context for one instance; the host sets ``message`` before each call."""

    def __init__(
        self,
        *,
        plan: InstancePlan,
        record: FunctionRecord,
        index: int,
        code: LoadedFunction,
        consumer: pulsar.Consumer,
        producers: Producers,
        state: FunctionStateLog,
        stats: InstanceStats,
        logger: logging.Logger,
        secrets: SecretsProvider,
    ) -> None:
        self.plan = plan
        self.record = record
        self.index = index
        self.code = code
        self.consumer = consumer
        self.producers = producers
        self.state = state
        self.stats = stats
        self.logger = logger
        self.secrets = secrets
        self.message: pulsar.Message | None = None
        self.publish_serdes: dict[str, SerDe] = {}
        self.user_config: dict[str, Any] = dict(record.config.user_config)
        self.function_id = str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"{record.fqfn}@{record.create_time_ms}")
        )

    # -- the current message ---------------------------------------------

    def get_message_id(self) -> pulsar.MessageId | None:
        """The id of the message being processed."""
        return self.message.message_id() if self.message else None

    def get_message_key(self) -> str | None:
        """The key of the message being processed."""
        return self.message.partition_key() if self.message else None

    def get_message_eventtime(self) -> int | None:
        """The event time (ms) of the message being processed, 0 if it has none."""
        return self.message.event_timestamp() if self.message else None

    def get_message_properties(self) -> dict[str, str]:
        """The properties of the message being processed."""
        return self.message.properties() if self.message else {}

    def get_current_message_topic_name(self) -> str | None:
        """The full name of the topic the message came from."""
        return self.message.topic_name() if self.message else None

    def get_partition_key(self) -> str | None:
        """The partition key of the message being processed."""
        return self.message.partition_key() if self.message else None

    def get_ordering_key(self) -> str | None:
        """The ordering key of the message being processed."""
        return self.message.ordering_key() if self.message else None

    # -- the function ------------------------------------------------------

    def get_function_tenant(self) -> str:
        """The function's tenant."""
        return self.plan.tenant

    def get_function_namespace(self) -> str:
        """The function's namespace."""
        return self.plan.namespace

    def get_function_name(self) -> str:
        """The function's name."""
        return self.plan.name

    def get_function_id(self) -> str:
        """A stable id of the function (a UUID derived from its name and creation time)."""
        return self.function_id

    def get_instance_id(self) -> int:
        """This instance's index, 0 to parallelism - 1."""
        return self.index

    def get_function_version(self) -> str:
        """The function's version as a string."""
        return str(self.record.version)

    def get_logger(self) -> logging.Logger:
        """A stdlib logger whose records carry the function and instance."""
        return self.logger

    def get_user_config_value(self, key: str) -> Any:
        """One value of ``userConfig``, None if absent."""
        return self.user_config.get(key)

    def get_user_config_map(self) -> dict[str, Any]:
        """The whole ``userConfig``."""
        return self.user_config

    def get_secret(self, secret_name: str) -> Any:
        """The secret through the configured provider; None if it is not configured."""
        secrets = self.record.config.secrets
        if secret_name not in secrets:
            return None
        return self.secrets.provide_secret(secret_name, secrets[secret_name])

    def get_input_topics(self) -> list[str]:
        """The input topics as they were configured."""
        return list(self.plan.inputs.topics)

    def get_output_topic(self) -> str | None:
        """The output topic, None if results are not published."""
        return self.plan.output.topic

    def get_output_serde_class_name(self) -> str | None:
        """The configured output serde class name."""
        return self.plan.output.serde

    # -- actions -------------------------------------------------------------

    def record_metric(self, metric_name: str, metric_value: float) -> None:
        """Accumulate a user metric (exposed as ``{name}_sum/_count/_min/_max``)."""
        self.stats.record_metric(str(metric_name), metric_value)

    def publish(
        self,
        topic_name: str,
        message: Any,
        serde_class_name: str = "serde.IdentitySerDe",
        properties: dict[str, str] | None = None,
        compression_type: Any = None,
        callback: Callable[[Any, Any], None] | None = None,
        message_conf: dict[str, Any] | None = None,
    ) -> None:
        """Serialize and send ``message``; it is flushed before the input is acknowledged."""
        producer = self.producers.for_topic(str(topic_name), compression_type)
        data = bytes(self.serde_for(str(serde_class_name)).serialize(message))
        conf = dict(message_conf or {})
        if properties:
            conf["properties"] = properties
        producer.send_async(data, self.wrap_callback(callback, str(topic_name)), **conf)
        self.producers.dirty.add(producer)

    def serde_for(self, name: str) -> SerDe:
        """The cached serde for ``context.publish``."""
        serde = self.publish_serdes.get(name)
        if serde is None:
            serde = self.publish_serdes[name] = make_serde(name, self.code)
        return serde

    def wrap_callback(
        self, callback: Callable[[Any, Any], None] | None, topic: str
    ) -> Callable[[Any, Any], None] | None:
        """Count failed publishes as system exceptions, then call the user's callback."""
        if callback is None:
            return None

        def done(result: Any, message_id: Any) -> None:
            if result != pulsar.Result.Ok:
                self.stats.record_system_exception(RuntimeError(f"publish to {topic}: {result}"))
            try:
                callback(result, message_id)
            except Exception:
                self.logger.exception("publish callback raised")

        return done

    def ack(self, msgid: Any, topic: str) -> None:
        """Acknowledge an input message (MANUAL mode or autoAck false)."""
        if base_topic_name(str(topic)) not in self.plan.inputs.serde_by_topic:
            raise ValueError(f"Invalid topicname {topic}")
        self.consumer.acknowledge(msgid)

    # -- state -------------------------------------------------------------

    def incr_counter(self, key: str, amount: int) -> None:
        """Add ``amount`` to a counter shared by every instance of the function, on any
        worker (durable: runtimes/instance/state_log.py)."""
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise StateError(
                f"incr_counter amount {amount!r} for key '{key}' is a "
                f"{type(amount).__name__}; amounts must be integers"
            )
        self.state.incr_counter(key, amount)

    def get_counter(self, key: str) -> int:
        """A counter's value, 0 if never incremented."""
        return self.state.get_counter(key)

    def del_counter(self, key: str) -> None:
        """Delete a counter."""
        self.state.delete(key)

    def put_state(self, key: str, value: Any) -> None:
        """Store a value (str or bytes) shared by every instance of the function."""
        self.state.put(key, value)

    def get_state(self, key: str) -> Any:
        """A stored value (str if it was put as str, else bytes), None if absent."""
        return self.state.get(key)
