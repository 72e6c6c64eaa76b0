"""Reading a pod's control port (``grpcPort``, plain HTTP; see pod_server.py): its
instance status and counters, at the pod IP the watch reports (no cluster DNS).
Does network I/O with aiohttp."""

from __future__ import annotations

import aiohttp
import msgspec
import structlog

from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.records import InstanceStatusData

log = structlog.get_logger("fnworker.runtime.kubernetes")

READ_TIMEOUT_SECONDS = 5.0
PARALLEL_READS = 32


class PodReading(msgspec.Struct, kw_only=True):
    """An instance's status and counters as its pod last reported them."""

    status: InstanceStatusData
    metrics: InstanceMetrics


def control_url(ip: str, port: int) -> str:
    """The base URL of a pod's control port (an IPv6 address in brackets)."""
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}:{port}"


def reading_session() -> aiohttp.ClientSession:
    """The HTTP session the driver reads pods with (every read bounded in time)."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=READ_TIMEOUT_SECONDS))


async def read_pod(http: aiohttp.ClientSession, base: str) -> PodReading | None:
    """GET the pod's /status and /stats; None when either read fails."""
    try:
        async with http.get(f"{base}/status") as reply:
            status = msgspec.json.decode(await reply.read(), type=InstanceStatusData)
        async with http.get(f"{base}/stats") as reply:
            metrics = msgspec.json.decode(await reply.read(), type=InstanceMetrics)
    except (aiohttp.ClientError, TimeoutError, OSError, msgspec.DecodeError) as error:
        log.debug("reading a pod failed", pod=base, error=repr(error))
        return None
    return PodReading(status=status, metrics=metrics)
