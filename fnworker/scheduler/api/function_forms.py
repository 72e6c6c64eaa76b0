"""The parts of the functions endpoints' multipart forms, decoded and checked: the
``functionConfig`` (with integers the metadata records can store), the package source,
``updateOptions`` and trigger's value. Each problem is a 400 naming the part or field.
"""

from __future__ import annotations

import msgspec
import structlog

from fnworker.scheduler.api.multipart import Form, read_file
from fnworker.scheduler.decide.function_validation import decode_submitted_config
from fnworker.scheduler.model.admin_records import PackageSource
from fnworker.scheduler.model.errors import bad_request
from fnworker.scheduler.model.records import FunctionConfig

STORABLE_INTEGERS = (-(2**63), 2**64 - 1)
"""The integers the metadata records can hold (msgpack's)."""

MAX_LOGGED_FIELDS = 20
"""How many ignored field names one warning line lists (each cut to 100 characters)."""

log = structlog.get_logger("fnworker.api")


FREE_FORM_FIELDS = ("userConfig", "secrets", "producerConfig", "windowConfig")
"""Fields holding any JSON, with inputSpecs' cryptoConfig (typed numbers are bounded by
the admission limits instead)."""


def decoded_config(raw: bytes, function: str = "") -> FunctionConfig:
    """The functionConfig part decoded (``decode_submitted_config``: fields fnworker does
    not know are ignored, as Pulsar does, with one warning line naming them); a number the
    worker could not store (an integer beyond 64 bits, say in userConfig) is a 400 too."""
    config, unknown = decode_submitted_config(raw)
    if unknown:
        log.warning(
            "functionConfig fields fnworker does not know were ignored",
            function=function,
            fields=[name[:100] for name in unknown[:MAX_LOGGED_FIELDS]],
            count=len(unknown),
        )
    document = msgspec.to_builtins(config)
    free_form = {field: document[field] for field in FREE_FORM_FIELDS if field in document}
    specs = document.get("inputSpecs", {})
    free_form["inputSpecs"] = {
        topic: {"cryptoConfig": s.get("cryptoConfig")} for topic, s in specs.items()
    }
    found = unstorable_integer(free_form, "")
    if found is not None:
        where, value = found
        shown = str(value) if len(str(value)) <= 40 else f"an integer of {len(str(value))} digits"
        low, high = STORABLE_INTEGERS
        raise bad_request(
            f"functionConfig field '{where}' holds {shown}, which the worker cannot store; "
            f"expected integers from {low} to {high}"
        )
    return config


def unstorable_integer(value: object, path: str) -> tuple[str, int] | None:
    """The path and value of the first integer outside STORABLE_INTEGERS, if any."""
    if isinstance(value, dict):
        prefix = f"{path}." if path else ""
        items: list[tuple[str, object]] = [(f"{prefix}{k}", v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, int) and not isinstance(value, bool):
        low, high = STORABLE_INTEGERS
        return None if low <= value <= high else (path, value)
    else:
        return None
    return next((f for p, v in items if (f := unstorable_integer(v, p)) is not None), None)


def package_source(form: Form) -> PackageSource:
    """The uploaded ``data`` file or the ``url`` part (the admin also reads a URL in ``py``)."""
    upload = form.files.get("data")
    url = form.text("url")
    if upload is not None and url:
        raise bad_request("both a data part and a url part were sent; expected only one of them")
    return PackageSource(upload=upload, url=url or None)


def check_update_options(raw: bytes | None) -> None:
    """``updateOptions`` must be a JSON object; fnworker has no option to act on yet."""
    if raw is None:
        return
    try:
        options = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        options = None
    if not isinstance(options, dict):
        raise bad_request("part 'updateOptions' is not valid; expected a JSON object such as {}")


async def trigger_value(form: Form) -> tuple[str, bytes]:
    """The part that holds the value to send (``dataStream``, a file, or ``data``) and the value."""
    stream = form.files.get("dataStream")
    if stream is not None:
        return "dataStream", await read_file(stream)
    data = form.texts.get("data")
    if data is None:
        raise bad_request(
            "part 'data' is missing; expected a data part (text) or a dataStream part (file)"
        )
    return "data", data
