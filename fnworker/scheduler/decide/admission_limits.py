"""The admission limits every function config must keep, as pure checks. No I/O.

``FunctionLimits`` is built once from the worker configuration (``limits_of``); the
checks take it as an argument. ``limit_problem`` names the first limit a complete
config breaks (one sentence: the field, the value, the limit and what is valid) or
returns None; registration and update turn it into a 400, and a record already
stored that breaks a limit (written by an older version or by a worker with larger
limits) is not run, with that sentence as its instances' status error.

Keys and defaults are in config/functions_worker.yml; docs/limits.md lists them all.
Limits without a key are fixed here, each with its reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Final, TypeVar

import msgspec

from fnworker.scheduler.decide.resource_granularity import Granularities, granularity_problem
from fnworker.scheduler.model.instances import PackageLimits
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord, Resources
from fnworker.scheduler.settings.worker_config import DEFAULT_MAX_RESOURCES, WorkerConfig

T = TypeVar("T", int, float)

JAVA_INT_MAX: Final = 2**31 - 1
"""Counters Pulsar holds as a Java int (and the client as a C int) cannot exceed this."""
MAX_RECEIVER_QUEUE_SIZE: Final = 100_000
"""Messages a consumer prefetches per instance (Pulsar's default 1000): 100,000 bounds
the memory one instance's queue may take."""
MAX_PENDING_ASYNC_REQUESTS: Final = 100_000
"""Unfinished async results an instance holds (Pulsar's default 1000)."""
MAX_TIMEOUT_MS: Final = 86_400_000
"""timeoutMs is the consumer's ack timeout; above one day it only postpones
redelivery past any use, and very large values overflow the client's timers."""
SIZED_FIELDS: Final = (
    "userConfig",
    "secrets",
    "customRuntimeOptions",
    "producerConfig",
    "inputSpecs",
    "customSerdeInputs",
    "customSchemaInputs",
    "customSchemaOutputs",
    "runtimeFlags",
    "inputs",
)
"""Fields that can make a config large, named when maxFunctionConfigBytes is exceeded."""


class FunctionLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The limits a function config is admitted under (defaults: the shipped yml's)."""

    max_parallelism: int = 1000
    max_fleet_instances: int = 100_000
    max_input_topics: int = 100
    max_config_bytes: int = 1024 * 1024
    min_cpu: float | None = None
    min_ram: int | None = None
    min_disk: int | None = None
    max_cpu: float = 64.0
    max_ram: int = 256 * 1024**3
    max_disk: int = 1024**4
    steps: Granularities = Granularities()
    """functionInstanceResourceGranularities and ...ChangeInLockStep."""
    package: PackageLimits = PackageLimits()


def limits_of(config: WorkerConfig) -> FunctionLimits:
    """The limits a worker with this configuration admits functions under."""
    low = config.function_instance_min_resources
    high = config.function_instance_max_resources
    steps = config.function_instance_resource_granularities
    return FunctionLimits(
        max_parallelism=config.max_function_parallelism,
        max_fleet_instances=config.max_fleet_instances,
        max_input_topics=config.max_input_topics_per_function,
        max_config_bytes=config.max_function_config_bytes,
        min_cpu=low.cpu if low else None,
        min_ram=low.ram if low else None,
        min_disk=low.disk if low else None,
        max_cpu=_part(high.cpu if high else None, DEFAULT_MAX_RESOURCES.cpu),
        max_ram=_part(high.ram if high else None, DEFAULT_MAX_RESOURCES.ram),
        max_disk=_part(high.disk if high else None, DEFAULT_MAX_RESOURCES.disk),
        steps=Granularities(
            cpu=steps.cpu if steps else None,
            ram=steps.ram if steps else None,
            lock_step=config.function_instance_resource_change_in_lock_step,
        ),
        package=PackageLimits(
            max_unpacked_bytes=config.max_package_unpacked_bytes,
            max_files=config.max_package_files,
            max_module_parse_bytes=config.max_module_parse_bytes,
        ),
    )


def _part(configured: T | None, default: T | None) -> T:
    """A configured bound, else the built-in one (always set for the maximum)."""
    value = configured if configured is not None else default
    assert value is not None
    return value


# --- the checks ---------------------------------------------------------------


def limit_problem(config: FunctionConfig, limits: FunctionLimits) -> str | None:
    """The first limit a complete (normalized) config breaks, as one sentence, or None."""
    for check in LIMIT_CHECKS:
        problem = check(config, limits)
        if problem is not None:
            return problem
    return None


def config_size_problem(config: FunctionConfig, limits: FunctionLimits) -> str | None:
    """The encoded config must fit ``maxFunctionConfigBytes``; names its largest field."""
    size = len(msgspec.json.encode(config))
    if size <= limits.max_config_bytes:
        return None
    document = msgspec.to_builtins(config)
    sizes = {field: len(msgspec.json.encode(document.get(field))) for field in SIZED_FIELDS}
    largest = max(sizes, key=lambda field: sizes[field])
    return (
        f"functionConfig is {size} bytes as JSON (its {largest} {sizes[largest]} bytes), above "
        f"maxFunctionConfigBytes {limits.max_config_bytes}; expected a config of at most "
        f"{limits.max_config_bytes} bytes"
    )


def parallelism_problem(config: FunctionConfig, limits: FunctionLimits) -> str | None:
    """1 <= parallelism <= maxFunctionParallelism."""
    value = config.parallelism
    if value is None or value <= limits.max_parallelism:
        return None
    return (
        f"parallelism {value} is above maxFunctionParallelism {limits.max_parallelism}; "
        f"expected 1 to {limits.max_parallelism}"
    )


def input_count_problem(config: FunctionConfig, limits: FunctionLimits) -> str | None:
    """At most ``maxInputTopicsPerFunction`` distinct inputs and patterns."""
    count = len(input_names(config))
    if count <= limits.max_input_topics:
        return None
    return (
        f"inputs names {count} input topics (inputs, topicsPattern, customSerdeInputs, "
        f"customSchemaInputs and inputSpecs together), above maxInputTopicsPerFunction "
        f"{limits.max_input_topics}; expected at most {limits.max_input_topics}"
    )


def input_names(config: FunctionConfig) -> set[str]:
    """Every distinct input topic or pattern a config names."""
    names = set(config.inputs) | set(config.custom_serde_inputs)
    names |= set(config.custom_schema_inputs) | set(config.input_specs)
    if config.topics_pattern:
        names.add(config.topics_pattern)
    return names


def resources_problem(config: FunctionConfig, limits: FunctionLimits) -> str | None:
    """cpu, ram and disk between functionInstanceMin/MaxResources; cpu finite."""
    resources = config.resources or Resources()
    parts = (
        ("cpu", resources.cpu, limits.min_cpu, limits.max_cpu, "cores"),
        ("ram", resources.ram, limits.min_ram, limits.max_ram, "bytes"),
        ("disk", resources.disk, limits.min_disk, limits.max_disk, "bytes"),
    )
    for part, value, least, most, unit in parts:
        low = least if least is not None else 0
        if not math.isfinite(value) or value <= 0:
            return (
                f"resources.{part} {value} is not valid; expected a positive number of "
                f"{unit} up to functionInstanceMaxResources.{part} {most}"
            )
        if value > most:
            return (
                f"resources.{part} {value} is above functionInstanceMaxResources.{part} {most}; "
                f"expected {_range(low, most)} {unit}"
            )
        if least is not None and value < least:
            return (
                f"resources.{part} {value} is below functionInstanceMinResources.{part} {least}; "
                f"expected {_range(least, most)} {unit}"
            )
    return None


def _range(low: float, high: float) -> str:
    """``1 to 64`` or ``up to 64`` when there is no lower bound."""
    return f"{low} to {high}" if low else f"more than 0 and up to {high}"


def steps_problem(config: FunctionConfig, limits: FunctionLimits) -> str | None:
    """cpu and ram as multiples of functionInstanceResourceGranularities."""
    return granularity_problem(config, limits.steps)


def counters_problem(config: FunctionConfig, limits: FunctionLimits) -> str | None:
    """maxMessageRetries, timeoutMs and maxPendingAsyncRequests within fixed bounds."""
    bounded = (
        ("maxMessageRetries", config.max_message_retries, JAVA_INT_MAX),
        ("timeoutMs", config.timeout_ms, MAX_TIMEOUT_MS),
        ("maxPendingAsyncRequests", config.max_pending_async_requests, MAX_PENDING_ASYNC_REQUESTS),
    )
    for field, value, most in bounded:
        if value is not None and value > most:
            return f"{field} {value} is above the limit {most}; expected at most {most}"
    return None


def queue_size_problem(config: FunctionConfig, limits: FunctionLimits) -> str | None:
    """Each input's receiverQueueSize at most MAX_RECEIVER_QUEUE_SIZE."""
    for topic, spec in config.input_specs.items():
        size = spec.receiver_queue_size
        if size is not None and size > MAX_RECEIVER_QUEUE_SIZE:
            return (
                f"inputSpecs['{topic}'].receiverQueueSize {size} is above the limit "
                f"{MAX_RECEIVER_QUEUE_SIZE}; expected 0 to {MAX_RECEIVER_QUEUE_SIZE}"
            )
    return None


LIMIT_CHECKS: tuple[Callable[[FunctionConfig, FunctionLimits], str | None], ...] = (
    config_size_problem,
    parallelism_problem,
    input_count_problem,
    resources_problem,
    steps_problem,
    counters_problem,
    queue_size_problem,
)


# --- the fleet ---------------------------------------------------------------


def fleet_problem(config: FunctionConfig, others: int, limits: FunctionLimits) -> str | None:
    """The fleet may hold at most ``maxFleetInstances`` instances over every function;
    ``others`` is what the other admitted functions ask for."""
    parallelism = config.parallelism or 1
    if others + parallelism <= limits.max_fleet_instances:
        return None
    room = max(limits.max_fleet_instances - others, 0)
    return (
        f"parallelism {parallelism} would bring the fleet to {others + parallelism} instances, "
        f"above maxFleetInstances {limits.max_fleet_instances}; expected at most {room} "
        "for this function"
    )


class AdmissionMemo:
    """Remembers ``limit_problem`` per function version, so a leader re-planning on
    every change does not re-check (and re-encode) every stored config. No I/O."""

    def __init__(self, limits: FunctionLimits) -> None:
        self.limits = limits
        self._seen: dict[str, tuple[int, str | None]] = {}
        self._new_refusals: list[tuple[str, str]] = []

    def problem(self, record: FunctionRecord) -> str | None:
        """The limit the record breaks, or None."""
        seen = self._seen.get(record.fqfn)
        if seen is not None and seen[0] == record.version:
            return seen[1]
        problem = limit_problem(record.config, self.limits)
        self._seen[record.fqfn] = (record.version, problem)
        if problem is not None:
            self._new_refusals.append((record.fqfn, problem))
        return problem

    def take_new_refusals(self) -> list[tuple[str, str]]:
        """Records found over a limit since the last call (fqfn, sentence), for the log."""
        refusals, self._new_refusals = self._new_refusals, []
        return refusals

    def admitted(self, functions: Mapping[Fqfn, FunctionRecord]) -> dict[Fqfn, FunctionRecord]:
        """The stored functions within the limits: the ones placed and run."""
        for gone in [fqfn for fqfn in self._seen if fqfn not in functions]:
            del self._seen[gone]
        return {fqfn: r for fqfn, r in functions.items() if self.problem(r) is None}

    def admitted_instances(
        self, functions: Mapping[Fqfn, FunctionRecord], leave_out: str | None = None
    ) -> int:
        """Instances the admitted functions ask for (a record over a limit runs none)."""
        return sum(
            record.parallelism()
            for fqfn, record in self.admitted(functions).items()
            if fqfn != leave_out
        )
