"""The records of the admin operations: uploaded packages, package sources and Pulsar's
FunctionStats shape. No I/O."""

from __future__ import annotations

from pathlib import Path

import msgspec

from fnworker.scheduler.model.instances import InstanceMetrics, WindowMetrics


class UploadedPackage(msgspec.Struct, frozen=True, kw_only=True):
    """A package received in a request, already written to a temporary file."""

    file_name: str
    path: Path


class PackageSource(msgspec.Struct, frozen=True, kw_only=True):
    """Where the code for a register/update comes from: an upload or a URL."""

    upload: UploadedPackage | None = None
    url: str | None = None


class InstanceStats(msgspec.Struct, kw_only=True, rename="camel"):
    """One entry of FunctionStats.instances."""

    instance_id: int
    metrics: InstanceMetrics


class FunctionStats(msgspec.Struct, kw_only=True, rename="camel"):
    """Aggregated counters of a function (``.../stats``), Pulsar's shape."""

    received_total: int = 0
    processed_successfully_total: int = 0
    system_exceptions_total: int = 0
    user_exceptions_total: int = 0
    avg_process_latency: float | None = None
    one_minute: WindowMetrics = msgspec.field(default_factory=WindowMetrics, name="1min")
    """The instances' counters over the last minute, summed, under Pulsar's key ``1min``."""
    last_invocation: int | None = None
    instances: list[InstanceStats] = []
