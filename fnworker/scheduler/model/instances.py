"""The records a runtime driver is handed and reports: how an instance reaches the
broker, what to start, its counters, and the package limits it enforces. No I/O."""

from __future__ import annotations

from pathlib import Path

import msgspec

from fnworker.scheduler.model.records import FunctionRecord, InstanceId

MIB = 1024 * 1024


class PackageLimits(msgspec.Struct, frozen=True, kw_only=True):
    """``maxPackageUnpackedBytes``, ``maxPackageFiles`` and ``maxModuleParseBytes``."""

    max_unpacked_bytes: int = 512 * MIB
    max_files: int = 20_000
    max_module_parse_bytes: int = 8 * MIB


class ClientSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How an instance reaches the broker (the worker's own broker settings)."""

    service_url: str
    auth_plugin: str | None = None
    auth_params: str | None = None
    tls_trust_certs_file_path: str | None = None
    tls_allow_insecure_connection: bool = False
    tls_hostname_verification: bool = False
    operation_timeout_seconds: int = 30
    consumer_id_slots: int = 0
    """pulsar-lite's consumer-id workaround as the worker decided it at start (0 = off;
    runtimes/broker_kind.py): its thread runtime spreads ids over this many slots, a
    process instance burns its index in throw-away readers before subscribing."""


DEFAULT_FUNCTIONS_NAMESPACE = "public/functions"
"""Pulsar's default ``pulsarFunctionsNamespace``."""


class StateSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where an instance keeps ``context`` state: one topic per function in the cluster's
    functions namespace on the instance's own broker (runtimes/instance/state_log.py)."""

    namespace: str = DEFAULT_FUNCTIONS_NAMESPACE
    write_timeout_seconds: float = 30.0
    """How long ``incr_counter``/``put_state`` wait for the broker before raising."""


class InstanceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a driver needs to run instance ``index`` of ``function``.

    ``package_path`` is a local copy of the function's package (.py, .zip or .whl)
    that belongs to this instance start and may be unpacked next to it.
    """

    instance: InstanceId
    index: int
    function: FunctionRecord
    package_path: Path
    worker_id: str
    client: ClientSettings
    secrets_provider: str = "clear-text"
    cluster_name: str = "standalone"
    state: StateSettings = StateSettings()
    """Where the function's state lives (the worker's ``pulsarFunctionsNamespace``)."""
    package_limits: PackageLimits = PackageLimits()
    """The worker's maxPackageUnpackedBytes / maxPackageFiles / maxModuleParseBytes,
    enforced again when the instance unpacks and checks its package."""


class WindowMetrics(msgspec.Struct, kw_only=True, rename="camel"):
    """Counters over the last minute (Pulsar's FunctionInstanceStatsDataBase, the
    ``1min`` block); how the minute is measured: runtimes/instance/stats.py."""

    received_total: int = 0
    processed_successfully_total: int = 0
    system_exceptions_total: int = 0
    user_exceptions_total: int = 0
    avg_process_latency: float | None = None


class InstanceMetrics(msgspec.Struct, kw_only=True, rename="camel"):
    """Counters of one instance (Pulsar's FunctionInstanceStats metrics)."""

    received_total: int = 0
    processed_successfully_total: int = 0
    system_exceptions_total: int = 0
    user_exceptions_total: int = 0
    avg_process_latency: float | None = None
    one_minute: WindowMetrics = msgspec.field(default_factory=WindowMetrics, name="1min")
    """The same counters over the last minute, under Pulsar's key ``1min``."""
    last_invocation: int | None = None
    user_metrics: dict[str, float] = {}
    stalled_seconds: float = 0.0
    """How long the instance has made no progress although it has input (stuck in a
    message, not connected, or input not delivered); 0 while healthy. fnworker's own
    (runtimes/instance/progress.py), exported as ``pulsar_function_stalled_seconds``."""
