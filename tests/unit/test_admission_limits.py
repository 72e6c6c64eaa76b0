"""Admission limits (fnworker/scheduler/decide/admission_limits.py) through the validation every
create and update goes through: a config over any limit is a 400 naming the field,
its value and the limit; a config within every limit is accepted."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnworker.scheduler.decide.admission_limits import (
    JAVA_INT_MAX,
    MAX_PENDING_ASYNC_REQUESTS,
    MAX_RECEIVER_QUEUE_SIZE,
    MAX_TIMEOUT_MS,
    AdmissionMemo,
    FunctionLimits,
    fleet_problem,
    limit_problem,
    limits_of,
)
from fnworker.scheduler.decide.function_validation import merge_update, validate_new_function
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.records import (
    ConsumerConfig,
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    Resources,
)
from fnworker.scheduler.settings.worker_config import ResourceBounds, WorkerConfig

LIMITS = FunctionLimits()


def config(**fields: Any) -> FunctionConfig:
    """A minimal valid config with ``fields`` changed."""
    base = FunctionConfig(class_name="m.Fn", inputs=["in"], output="out")
    return msgspec.structs.replace(base, **fields)


def validate(cfg: FunctionConfig, limits: FunctionLimits = LIMITS) -> FunctionConfig:
    return validate_new_function("public", "default", "fn", cfg, "m.py", limits)


def reason_of(cfg: FunctionConfig, limits: FunctionLimits = LIMITS) -> str:
    with pytest.raises(ApiError) as caught:
        validate(cfg, limits)
    assert caught.value.status == 400
    return caught.value.reason


# --- the cases ------------------------------------------------------------


def test_parallelism_of_a_billion_names_field_value_and_limit() -> None:
    assert reason_of(config(parallelism=1_000_000_000)) == (
        "parallelism 1000000000 is above maxFunctionParallelism 1000; expected 1 to 1000"
    )


def test_cpu_1e300_is_above_the_default_maximum() -> None:
    assert reason_of(config(resources=Resources(cpu=1e300))) == (
        "resources.cpu 1e+300 is above functionInstanceMaxResources.cpu 64.0; "
        "expected more than 0 and up to 64.0 cores"
    )


def test_ram_2_to_the_70_is_above_the_default_maximum() -> None:
    assert reason_of(config(resources=Resources(ram=2**70))) == (
        f"resources.ram {2**70} is above functionInstanceMaxResources.ram {256 * 2**30}; "
        f"expected more than 0 and up to {256 * 2**30} bytes"
    )


@pytest.mark.parametrize("cpu", [float("inf"), float("nan")])
def test_cpu_must_be_finite(cpu: float) -> None:
    assert reason_of(config(resources=Resources(cpu=cpu))).startswith(f"resources.cpu {cpu} ")


def test_ten_thousand_input_topics() -> None:
    topics = [f"in-{i}" for i in range(10_000)]
    assert reason_of(config(inputs=topics)).startswith(
        "inputs names 10000 input topics (inputs, topicsPattern, customSerdeInputs, "
        "customSchemaInputs and inputSpecs together), above maxInputTopicsPerFunction 100"
    )


def test_inputs_of_every_kind_count_together() -> None:
    limits = FunctionLimits(max_input_topics=3)
    specs = {"c": ConsumerConfig(), "d": ConsumerConfig()}
    within = config(inputs=["a"], custom_serde_inputs={"b": "S"}, input_specs={"c": specs["c"]})
    validate(within, limits)
    over = config(inputs=["a"], custom_serde_inputs={"b": "S"}, input_specs=specs)
    assert reason_of(over, limits).startswith("inputs names 4 input topics")
    # the same topic named twice counts once
    validate(
        config(inputs=["a", "persistent://public/default/a"], input_specs={"a": specs["c"]}), limits
    )


def test_a_huge_user_config_names_the_field_and_the_size() -> None:
    reason = reason_of(config(user_config={"blob": "x" * (2 * 2**20)}))
    assert reason.startswith("functionConfig is ")
    assert "(its userConfig " in reason
    assert reason.endswith(
        "above maxFunctionConfigBytes 1048576; expected a config of at most 1048576 bytes"
    )


def test_config_size_is_checked_before_any_check_echoing_a_value() -> None:
    reason = reason_of(config(class_name="not a class" + "x" * 2**21))
    assert reason.startswith("functionConfig is ") and len(reason) < 300


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"max_message_retries": JAVA_INT_MAX + 1},
            (
                f"maxMessageRetries {JAVA_INT_MAX + 1} is above the limit {JAVA_INT_MAX}; "
                f"expected at most {JAVA_INT_MAX}"
            ),
        ),
        (
            {"timeout_ms": MAX_TIMEOUT_MS + 1},
            (
                f"timeoutMs {MAX_TIMEOUT_MS + 1} is above the limit {MAX_TIMEOUT_MS}; "
                f"expected at most {MAX_TIMEOUT_MS}"
            ),
        ),
        (
            {"max_pending_async_requests": 10**12},
            (
                f"maxPendingAsyncRequests {10**12} is above the limit "
                f"{MAX_PENDING_ASYNC_REQUESTS}; expected at most {MAX_PENDING_ASYNC_REQUESTS}"
            ),
        ),
        (
            {"input_specs": {"in": ConsumerConfig(receiver_queue_size=10**9)}},
            (
                "inputSpecs['persistent://public/default/in'].receiverQueueSize 1000000000 "
                f"is above the limit {MAX_RECEIVER_QUEUE_SIZE}; "
                f"expected 0 to {MAX_RECEIVER_QUEUE_SIZE}"
            ),
        ),
    ],
)
def test_fixed_bounds(fields: dict[str, Any], expected: str) -> None:
    assert reason_of(config(**fields)) == expected


def test_min_and_max_resources_from_the_worker_config() -> None:
    worker = WorkerConfig(
        function_instance_min_resources=ResourceBounds(cpu=0.5, ram=2**20),
        function_instance_max_resources=ResourceBounds(cpu=4.0),
    )
    limits = limits_of(worker)
    assert (limits.max_cpu, limits.max_ram, limits.max_disk) == (4.0, 256 * 2**30, 2**40)
    assert reason_of(config(resources=Resources(cpu=0.25)), limits) == (
        "resources.cpu 0.25 is below functionInstanceMinResources.cpu 0.5; "
        "expected 0.5 to 4.0 cores"
    )
    assert reason_of(config(resources=Resources(cpu=8.0)), limits).startswith(
        "resources.cpu 8.0 is above functionInstanceMaxResources.cpu 4.0"
    )
    assert reason_of(config(resources=Resources(ram=1024)), limits).startswith(
        "resources.ram 1024 is below functionInstanceMinResources.ram 1048576"
    )
    validate(config(resources=Resources(cpu=2.0, ram=2**30)), limits)


def test_limits_of_reads_every_key() -> None:
    worker = WorkerConfig(
        max_function_parallelism=7,
        max_fleet_instances=70,
        max_input_topics_per_function=3,
        max_function_config_bytes=4096,
        max_package_unpacked_bytes=100,
        max_package_files=5,
        max_module_parse_bytes=10,
        function_instance_max_resources=None,
    )
    limits = limits_of(worker)
    assert (limits.max_parallelism, limits.max_fleet_instances) == (7, 70)
    assert (limits.max_input_topics, limits.max_config_bytes) == (3, 4096)
    assert (limits.max_cpu, limits.max_ram, limits.max_disk) == (64.0, 256 * 2**30, 2**40)
    package = limits.package
    assert (package.max_unpacked_bytes, package.max_files, package.max_module_parse_bytes) == (
        100,
        5,
        10,
    )
    assert limits_of(WorkerConfig()) == FunctionLimits()


# --- updates ----------------------------------------------------------------------


def test_an_update_over_a_limit_is_refused() -> None:
    stored = validate(config())
    with pytest.raises(ApiError) as caught:
        merge_update(stored, FunctionConfig(parallelism=5000), LIMITS)
    assert caught.value.reason.startswith("parallelism 5000 is above maxFunctionParallelism")


def test_an_update_can_bring_a_stored_record_over_a_limit_back_within_it() -> None:
    stored = msgspec.structs.replace(validate(config()), parallelism=10**9)
    with pytest.raises(ApiError):
        merge_update(stored, FunctionConfig(), LIMITS)
    assert merge_update(stored, FunctionConfig(parallelism=3), LIMITS).parallelism == 3


def test_without_limits_only_the_rules_apply() -> None:
    assert (
        validate_new_function(
            "public", "default", "fn", config(parallelism=10**9), "m.py"
        ).parallelism
        == 10**9
    )


# --- the fleet --------------------------------------------------------------------


def record(name: str, parallelism: int, version: int = 1) -> FunctionRecord:
    return FunctionRecord(
        fqfn=Fqfn(f"public/default/{name}"),
        version=version,
        config=msgspec.structs.replace(validate(config()), parallelism=parallelism),
    )


def test_fleet_total_counts_only_admitted_functions() -> None:
    limits = FunctionLimits(max_parallelism=10, max_fleet_instances=25)
    memo = AdmissionMemo(limits)
    functions = {r.fqfn: r for r in (record("a", 10), record("b", 10), record("huge", 10**9))}
    assert memo.admitted_instances(functions) == 20
    assert memo.admitted_instances(functions, leave_out="public/default/a") == 10
    assert fleet_problem(config(parallelism=5), 20, limits) is None
    assert fleet_problem(config(parallelism=6), 20, limits) == (
        "parallelism 6 would bring the fleet to 26 instances, above maxFleetInstances 25; "
        "expected at most 5 for this function"
    )


def test_memo_reports_each_refused_version_once() -> None:
    memo = AdmissionMemo(FunctionLimits(max_parallelism=10))
    huge = record("huge", 10**9)
    functions = {huge.fqfn: huge}
    assert memo.admitted(functions) == {}
    assert memo.admitted(functions) == {}
    refusals = memo.take_new_refusals()
    assert refusals == [(huge.fqfn, limit_problem(huge.config, memo.limits))]
    assert memo.take_new_refusals() == []
    fixed = msgspec.structs.replace(
        huge, version=2, config=msgspec.structs.replace(huge.config, parallelism=2)
    )
    assert memo.admitted({fixed.fqfn: fixed}) == {fixed.fqfn: fixed}
    assert memo.take_new_refusals() == []


# --- properties -------------------------------------------------------------------

small_limits = st.builds(
    FunctionLimits,
    max_parallelism=st.integers(1, 50),
    max_input_topics=st.integers(1, 8),
    max_cpu=st.floats(0.5, 16.0),
    max_ram=st.integers(2**20, 2**34),
    max_disk=st.integers(2**20, 2**40),
)


@st.composite
def within(draw: st.DrawFn, limits: FunctionLimits) -> FunctionConfig:
    """A config inside every limit."""
    topics = draw(st.integers(1, limits.max_input_topics))
    return config(
        inputs=[f"in-{i}" for i in range(topics)],
        parallelism=draw(st.integers(1, limits.max_parallelism)),
        resources=Resources(
            cpu=draw(st.floats(0.001, limits.max_cpu)),
            ram=draw(st.integers(1, limits.max_ram)),
            disk=draw(st.integers(1, limits.max_disk)),
        ),
        max_message_retries=draw(st.none() | st.integers(0, JAVA_INT_MAX)),
        max_pending_async_requests=draw(st.none() | st.integers(1, MAX_PENDING_ASYNC_REQUESTS)),
    )


@settings(max_examples=200, deadline=None)
@given(st.data(), small_limits)
def test_any_config_within_the_limits_is_accepted(
    data: st.DataObject, limits: FunctionLimits
) -> None:
    cfg = data.draw(within(limits))
    assert validate(cfg, limits).parallelism == cfg.parallelism


OVER = {
    "parallelism": lambda lim, n: {"parallelism": lim.max_parallelism + n},
    "inputs": lambda lim, n: {
        "inputs": [f"in-{i}" for i in range(lim.max_input_topics + 1 + n % 100)]
    },
    "resources.cpu": lambda lim, n: {"resources": Resources(cpu=lim.max_cpu * (1 + n))},
    "resources.ram": lambda lim, n: {"resources": Resources(cpu=0.1, ram=lim.max_ram + n)},
    "resources.disk": lambda lim, n: {
        "resources": Resources(cpu=0.1, ram=1, disk=lim.max_disk + n)
    },
    "maxMessageRetries": lambda lim, n: {"max_message_retries": JAVA_INT_MAX + n},
    "timeoutMs": lambda lim, n: {"timeout_ms": MAX_TIMEOUT_MS + n},
    "maxPendingAsyncRequests": lambda lim, n: {
        "max_pending_async_requests": MAX_PENDING_ASYNC_REQUESTS + n
    },
}


@settings(max_examples=300, deadline=None)
@given(st.data(), small_limits, st.sampled_from(sorted(OVER)), st.integers(1, 10**6))
def test_any_config_over_one_limit_is_refused_naming_the_field(
    data: st.DataObject, limits: FunctionLimits, field: str, excess: int
) -> None:
    base = data.draw(within(limits))
    over = msgspec.structs.replace(base, **OVER[field](limits, excess))
    reason = reason_of(over, limits)
    assert reason.startswith(f"{field} "), reason
    assert "above" in reason and "expected" in reason
    assert len(reason) < 400
