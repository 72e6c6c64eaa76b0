"""Decides the broker-specific workarounds of one worker at start: asks the broker
who it is (runtimes/broker_probe.py, off the event loop, bounded) unless
``pulsarLiteConsumerIdSlots`` overrides the decision, records the decision in the
ClientSettings every instance gets (so a process-runtime instance applies the same
one without asking again), and says so in one start-up log line.

Why the worker asks once rather than every instance process: one connection per
worker start instead of one per instance start (a fleet restarting 1,000 process
instances would open 1,000 more), one decision for all of a worker's instances, and
no added latency when an instance starts.
"""

from __future__ import annotations

import anyio
import msgspec
import structlog

from fnworker.runtimes.broker_kind import BrokerFinding, BrokerKind, consumer_id_slots
from fnworker.runtimes.broker_probe import PROBE_SECONDS, probe_broker
from fnworker.scheduler.model.instances import ClientSettings
from fnworker.scheduler.settings.worker_config import WorkerConfig

log = structlog.get_logger("fnworker.worker")


async def with_broker_workarounds(
    config: WorkerConfig, client: ClientSettings, seconds: float = PROBE_SECONDS
) -> ClientSettings:
    """``client`` with the consumer-id workaround this worker applies."""
    override = config.pulsar_lite_consumer_id_slots
    if override is not None:
        finding = BrokerFinding(kind=BrokerKind.UNKNOWN, detail="not asked: the key decides")
    else:
        finding = await anyio.to_thread.run_sync(
            probe_broker,
            client.service_url,
            seconds,
            config.coordination_backend == "pulsar",
            abandon_on_cancel=True,
        )
    slots = consumer_id_slots(finding.kind, override)
    log.info(
        "start-up: broker kind",
        broker=finding.kind.value,
        server_version=finding.server_version or None,
        detail=finding.detail or None,
        consumer_id_workaround=f"on, {slots} slots" if slots else "off",
        decided_by="pulsarLiteConsumerIdSlots" if override is not None else "the broker's answer",
    )
    return msgspec.structs.replace(client, consumer_id_slots=slots)
