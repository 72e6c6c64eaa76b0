"""The flags of ``fnworker functions <action>``, with pulsar-admin's names: the
function's names, its details (create, update, localrun), and each action's own
flags. Builds argparse parsers only; no I/O."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from fnworker.scheduler.cli.common_flags import boolean, connection_parent, json_object, parent
from fnworker.scheduler.cli.localrun_flags import add_localrun_flags

PROCESSING_GUARANTEES = ("ATLEAST_ONCE", "ATMOST_ONCE", "EFFECTIVELY_ONCE", "MANUAL")
INSTANCE_ACTIONS = ("status", "stats", "start", "stop", "restart")
NAMED_ACTIONS = ("delete", "get", *INSTANCE_ACTIONS, "trigger", "querystate", "putstate")


def add_functions(commands: Any, admin_url: str, environ: Mapping[str, str]) -> None:
    """The ``functions`` group and every action in it."""
    functions = commands.add_parser("functions", help="manage functions (pulsar-admin functions)")
    actions = functions.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = connection_parent(admin_url, environ)
    named = parent(add_name_flags)
    details = parent(add_detail_flags)
    instance = parent(
        lambda p: p.add_argument("--instance-id", type=int, help="one instance (default: all)")
    )
    for action in ("create", "update"):
        actions.add_parser(action, parents=[common, named, details], help=f"{action} a function")
    for action in NAMED_ACTIONS:
        parents = [common, named, instance] if action in INSTANCE_ACTIONS else [common, named]
        sub = actions.add_parser(
            action, parents=parents, help=_HELP.get(action, f"{action} a function")
        )
        if action in _ACTION_FLAGS:
            _ACTION_FLAGS[action](sub)
    download = actions.add_parser(
        "download", parents=[common, named], help="download a function's package or a file"
    )
    _add_download_flags(download)
    upload = actions.add_parser("upload", parents=[common], help="store a file on the worker")
    _add_upload_flags(upload)
    listing = actions.add_parser("list", parents=[common], help="list the functions of a namespace")
    listing.add_argument("--tenant", default="public", help="the tenant (default public)")
    listing.add_argument("--namespace", default="default", help="the namespace (default default)")
    localrun = actions.add_parser(
        "localrun",
        parents=[named, details],
        help="run a function in the foreground against a broker (no worker)",
    )
    add_localrun_flags(localrun)


_HELP = {
    "trigger": "send a value to a function and print its answer",
    "querystate": "print the state a function keeps under a key",
    "putstate": "set the state a function keeps under a key",
}


def add_name_flags(parser: argparse.ArgumentParser) -> None:
    """--tenant, --namespace, --name and --fqfn."""
    parser.add_argument("--tenant", help="the function's tenant (default public)")
    parser.add_argument("--namespace", help="the function's namespace (default default)")
    parser.add_argument("--name", help="the function's name")
    parser.add_argument("--fqfn", help="tenant/namespace/name instead of the three flags")


def add_detail_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that describe a function (pulsar-admin's FunctionDetailsCommand)."""
    add = parser.add_argument
    add("--py", help="the function's .py, .zip or .whl file, or a file://, http:// or https:// url")
    add(
        "--classname", help="the function's class, such as exclamation_function.ExclamationFunction"
    )
    add("-i", "--inputs", help="input topics, comma-separated")
    add(
        "--topics-pattern",
        help="a pattern of input topics, such as persistent://public/default/in-.*",
    )
    add("-o", "--output", help="the output topic")
    add("--log-topic", help="the topic the function's logs go to")
    add("--parallelism", type=int, help="the number of instances")
    add("--user-config", type=json_object, help="user config as a JSON object")
    add("--secrets", type=json_object, help="secrets as a JSON object")
    add("--processing-guarantees", choices=PROCESSING_GUARANTEES, help="delivery semantics")
    add("--function-config-file", help="a YAML or JSON FunctionConfig; flags override it")
    add(
        "--custom-serde-inputs",
        type=json_object,
        help="input topic to SerDe class, as a JSON object",
    )
    add("--custom-schema-inputs", type=json_object, help="input topic to schema, as a JSON object")
    add("--output-serde-classname", help="the SerDe class of the output")
    add("-st", "--schema-type", help="the schema type of the output")
    add(
        "--max-message-retries",
        type=int,
        help="retries before a message goes to the dead letter topic",
    )
    add("--dead-letter-topic", help="where messages go after --max-message-retries")
    add("--subs-name", help="the input subscription's name")
    add("--subs-position", choices=("Latest", "Earliest"), help="where a new subscription starts")
    add("--retain-ordering", action="store_true", default=None, help="process messages in order")
    add(
        "--retain-key-ordering",
        action="store_true",
        default=None,
        help="process messages of a key in order",
    )
    add("--auto-ack", type=boolean, metavar="true|false", help="acknowledge messages automatically")
    add("--timeout-ms", type=int, help="the message timeout in milliseconds")
    add("--cpu", type=float, help="cores per instance")
    add("--ram", type=int, help="bytes of memory per instance")
    add("--disk", type=int, help="bytes of disk per instance")
    add("--custom-runtime-options", help="runtime options as a JSON string")
    add("--runtime-flags", help="extra flags for the instance's Python process")
    add(
        "--cleanup-subscription",
        type=boolean,
        metavar="true|false",
        help="delete the subscription on delete",
    )


def _add_trigger_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trigger-value", help="the value to send")
    parser.add_argument("--trigger-file", help="a file whose content is the value to send")
    parser.add_argument("--topic", help="the input topic to send to (default: the only input)")


def _add_download_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination-file", required=True, help="where to write the file")
    parser.add_argument("--path", help="a file stored by upload, instead of a function's package")


def _add_upload_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source-file", required=True, help="the file to store")
    parser.add_argument("--path", required=True, help="where to store it, such as a/b/file.py")


def _add_querystate_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-k", "--key", required=True, help="the state key")
    parser.add_argument(
        "-w", "--watch", action="store_true", help="print the value every second until Ctrl-C"
    )


def _add_putstate_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-s",
        "--state",
        required=True,
        help='a FunctionState JSON object, such as \'{"key": "k", "stringValue": "v"}\'',
    )


_ACTION_FLAGS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "trigger": _add_trigger_flags,
    "querystate": _add_querystate_flags,
    "putstate": _add_putstate_flags,
}
