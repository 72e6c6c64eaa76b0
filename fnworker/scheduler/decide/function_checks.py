"""The rules a complete FunctionConfig must satisfy, one check per rule (Pulsar's
FunctionConfigUtils for Python functions), and the input topics they reason about.
Each check raises a 400 whose one sentence names the field, the value and what would
be valid. Pure, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from fnworker.scheduler.model.errors import bad_request
from fnworker.scheduler.model.records import FunctionConfig, Resources

_CLASS_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def input_topics(config: FunctionConfig) -> dict[str, bool]:
    """Every input topic or pattern of a normalized config, with whether it is a pattern."""
    topics = {topic: False for topic in config.inputs}
    topics.update({topic: False for topic in config.custom_serde_inputs})
    topics.update({topic: False for topic in config.custom_schema_inputs})
    topics.update({topic: spec.is_regex_pattern for topic, spec in config.input_specs.items()})
    if config.topics_pattern:
        topics[config.topics_pattern] = True
    return topics


# --- the checks, one rule each --------------------------------------------------


def _check_class_name(config: FunctionConfig) -> None:
    if not config.class_name:
        raise bad_request(
            "className is required; expected the function's Python class, "
            "such as exclamation_function.ExclamationFunction"
        )
    if _CLASS_NAME.fullmatch(config.class_name) is None:
        raise bad_request(
            f"className '{config.class_name}' is not valid; "
            "expected a dotted Python name such as module.ClassName"
        )


def _check_inputs(config: FunctionConfig) -> None:
    topics = input_topics(config)
    if not topics:
        raise bad_request(
            "inputs is empty; expected at least one input topic in inputs, topicsPattern, "
            "customSerdeInputs or inputSpecs"
        )
    if config.output in topics:
        raise bad_request(
            f"output '{config.output}' is also an input topic; "
            "expected an output topic that is not an input"
        )


def _check_parallelism(config: FunctionConfig) -> None:
    if config.parallelism is not None and config.parallelism < 1:
        raise bad_request(
            f"parallelism {config.parallelism} is not valid; expected an integer of at least 1"
        )


def _check_retries(config: FunctionConfig) -> None:
    retries = config.max_message_retries
    if retries is not None and retries < 0:
        raise bad_request(
            f"maxMessageRetries {retries} is not valid; expected an integer of at least 0"
        )
    if config.dead_letter_topic and retries is None:
        raise bad_request(
            f"deadLetterTopic '{config.dead_letter_topic}' needs maxMessageRetries; "
            "expected maxMessageRetries set to 0 or more alongside it"
        )
    if retries is not None and config.processing_guarantees == "EFFECTIVELY_ONCE":
        raise bad_request(
            f"maxMessageRetries {retries} cannot be used with "
            "processingGuarantees EFFECTIVELY_ONCE; "
            "expected ATLEAST_ONCE, ATMOST_ONCE or MANUAL"
        )


def _check_timeout(config: FunctionConfig) -> None:
    timeout = config.timeout_ms
    if timeout is not None and timeout <= 0:
        raise bad_request(
            f"timeoutMs {timeout} is not valid; expected a positive number of milliseconds"
        )
    if timeout is not None and config.processing_guarantees != "ATLEAST_ONCE":
        raise bad_request(
            f"timeoutMs {timeout} cannot be used with processingGuarantees "
            f"{config.processing_guarantees}; expected ATLEAST_ONCE"
        )


def _check_ordering(config: FunctionConfig) -> None:
    if config.retain_ordering and config.retain_key_ordering:
        raise bad_request(
            "retainOrdering and retainKeyOrdering are both true; expected at most one of them"
        )
    if config.retain_key_ordering and config.processing_guarantees == "EFFECTIVELY_ONCE":
        raise bad_request(
            "retainKeyOrdering true cannot be used with processingGuarantees EFFECTIVELY_ONCE; "
            "expected ATLEAST_ONCE, ATMOST_ONCE or MANUAL"
        )


def _check_resources(config: FunctionConfig) -> None:
    resources = config.resources or Resources()
    for field, value in (("cpu", resources.cpu), ("ram", resources.ram), ("disk", resources.disk)):
        if value <= 0:
            raise bad_request(f"resources.{field} {value} is not valid; expected a positive number")


def _check_custom_runtime_options(config: FunctionConfig) -> None:
    options = config.custom_runtime_options
    if not options:
        return
    try:
        parsed = json.loads(options)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise bad_request(
            f"customRuntimeOptions '{options}' is not valid; expected a JSON object in a string"
        )


def _check_input_specs(config: FunctionConfig) -> None:
    for topic, spec in config.input_specs.items():
        if spec.receiver_queue_size is not None and spec.receiver_queue_size < 0:
            raise bad_request(
                f"inputSpecs['{topic}'].receiverQueueSize {spec.receiver_queue_size} is not valid; "
                "expected an integer of at least 0"
            )
        if spec.schema_type and spec.serde_class_name:
            raise bad_request(
                f"inputSpecs['{topic}'] sets both schemaType and serdeClassName; "
                "expected at most one"
            )
        if spec.crypto_config is not None and not spec.crypto_config.get(
            "cryptoKeyReaderClassName"
        ):
            raise bad_request(
                f"inputSpecs['{topic}'].cryptoConfig has no cryptoKeyReaderClassName; "
                "expected a class name"
            )


def _check_output_serde(config: FunctionConfig) -> None:
    if config.output_serde_class_name and config.output_schema_type:
        raise bad_request(
            "outputSerdeClassName and outputSchemaType are both set; expected at most one of them"
        )


def _check_python_only(config: FunctionConfig) -> None:
    for field, value in (("jar", config.jar), ("go", config.go)):
        if value:
            raise bad_request(
                f"{field} '{value}' is not supported; "
                "fnworker runs Python functions (set py instead)"
            )
    if config.window_config is not None:
        raise bad_request(
            "windowConfig is not supported for Python functions; expected no windowConfig"
        )


def _check_pending_requests(config: FunctionConfig) -> None:
    pending = config.max_pending_async_requests
    if pending is not None and pending < 1:
        raise bad_request(
            f"maxPendingAsyncRequests {pending} is not valid; expected an integer of at least 1"
        )


CHECKS: tuple[Callable[[FunctionConfig], None], ...] = (
    _check_python_only,
    _check_class_name,
    _check_inputs,
    _check_parallelism,
    _check_retries,
    _check_timeout,
    _check_ordering,
    _check_resources,
    _check_custom_runtime_options,
    _check_input_specs,
    _check_output_serde,
    _check_pending_requests,
)
