"""The ``fnworker`` command line: ``standalone``, ``worker``, ``functions <action>``
with pulsar-admin's flag names, and ``kubernetes render``. Builds argparse parsers
only; no I/O."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from typing import Any

from fnworker.scheduler.cli.admin_client import ADMIN_URL_ENV, DEFAULT_ADMIN_URL
from fnworker.scheduler.cli.connection import (
    AUTH_PARAMS_ENV,
    AUTH_PLUGIN_ENV,
    TRUST_CERT_ENV,
    Connection,
)

PROCESSING_GUARANTEES = ("ATLEAST_ONCE", "ATMOST_ONCE", "EFFECTIVELY_ONCE", "MANUAL")
INSTANCE_ACTIONS = ("status", "stats", "start", "stop", "restart")
NAMED_ACTIONS = ("delete", "get", *INSTANCE_ACTIONS, "trigger", "download")


def json_object(text: str) -> dict[str, Any]:
    """A flag value that must be a JSON object."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not valid; expected a JSON object such as '{{\"key\": \"value\"}}'"
        )
    return value


def boolean(text: str) -> bool:
    """``true`` or ``false``, as pulsar-admin's arity-1 booleans."""
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"'{text}' is not valid; expected true or false")
    return lowered == "true"


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The whole command line; ``environ`` supplies FNWORKER_ADMIN_URL."""
    parser = argparse.ArgumentParser(
        prog="fnworker", description="A Python functions worker for Apache Pulsar."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_standalone(commands)
    _add_worker(commands)
    _add_functions(commands, environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL, environ)
    _add_kubernetes(commands)
    return parser


def _add_standalone(commands: Any) -> None:
    sub = commands.add_parser("standalone", help="run one worker with an embedded broker")
    sub.add_argument("--config", help="functions_worker.yml to read (default: built-in defaults)")
    sub.add_argument("--state-dir", help="where packages, broker data and logs are kept")
    sub.add_argument(
        "--port", type=int, help="the REST API port (default: workerPort from the config)"
    )
    sub.add_argument(
        "--broker-url", help="use this broker (pulsar://...) instead of an embedded one"
    )
    sub.add_argument(
        "--demo", action="store_true", help="register the example function and send it messages"
    )
    sub.add_argument("--demo-messages", type=int, help="how many messages the demo sends")


def _add_worker(commands: Any) -> None:
    sub = commands.add_parser("worker", help="run one worker of a fleet")
    sub.add_argument("--config", required=True, help="functions_worker.yml to read")
    sub.add_argument(
        "--bind-address",
        default="0.0.0.0",
        help="address the REST API listens on (default 0.0.0.0)",
    )


def _add_kubernetes(commands: Any) -> None:
    kubernetes = commands.add_parser("kubernetes", help="Kubernetes runtime tools")
    actions = kubernetes.add_subparsers(dest="action", required=True, metavar="ACTION")
    render = actions.add_parser(
        "render", help="print a function's StatefulSet, Service and Secret as YAML (no cluster)"
    )
    render.add_argument(
        "--function-config-file", required=True, help="a YAML or JSON FunctionConfig"
    )
    render.add_argument(
        "--config", help="functions_worker.yml to read (default: built-in defaults)"
    )


def _add_functions(commands: Any, admin_url: str, environ: Mapping[str, str]) -> None:
    functions = commands.add_parser("functions", help="manage functions (pulsar-admin functions)")
    actions = functions.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = _parent(lambda p: _add_connection_flags(p, admin_url, environ))
    named = _parent(_add_name_flags)
    details = _parent(_add_detail_flags)
    instance = _parent(
        lambda p: p.add_argument("--instance-id", type=int, help="one instance (default: all)")
    )
    for action in ("create", "update"):
        actions.add_parser(action, parents=[common, named, details], help=f"{action} a function")
    for action in NAMED_ACTIONS:
        parents = [common, named, instance] if action in INSTANCE_ACTIONS else [common, named]
        sub = actions.add_parser(action, parents=parents, help=f"{action} a function")
        if action in _ACTION_FLAGS:
            _ACTION_FLAGS[action](sub)
    listing = actions.add_parser("list", parents=[common], help="list the functions of a namespace")
    listing.add_argument("--tenant", default="public", help="the tenant (default public)")
    listing.add_argument("--namespace", default="default", help="the namespace (default default)")


def _add_connection_flags(
    parser: argparse.ArgumentParser, admin_url: str, environ: Mapping[str, str]
) -> None:
    """--admin-url and pulsar-admin's authentication and TLS flags."""
    add = parser.add_argument
    add(
        "--admin-url",
        default=admin_url,
        help=f"the worker's REST API, http(s):// (default {admin_url}, env {ADMIN_URL_ENV})",
    )
    add(
        "--auth-plugin",
        default=environ.get(AUTH_PLUGIN_ENV),
        help="org.apache.pulsar.client.impl.auth.AuthenticationToken or AuthenticationTls "
        f"(env {AUTH_PLUGIN_ENV})",
    )
    add(
        "--auth-params",
        default=environ.get(AUTH_PARAMS_ENV),
        help="token:<jwt> or file:///path/to/token; tlsCertFile:/c.pem,tlsKeyFile:/k.pem for "
        f"AuthenticationTls (env {AUTH_PARAMS_ENV})",
    )
    add(
        "--tls-trust-cert-path",
        default=environ.get(TRUST_CERT_ENV),
        help=f"CA certificates (PEM) to trust for https:// (env {TRUST_CERT_ENV})",
    )
    add(
        "--tls-allow-insecure",
        action="store_true",
        help="accept any server certificate (no verification at all)",
    )
    add(
        "--tls-enable-hostname-verification",
        type=boolean,
        nargs="?",
        const=True,
        default=True,
        metavar="true|false",
        help="check the server certificate names the host (default true)",
    )


def connection_of(args: argparse.Namespace) -> Connection:
    """The security flags of a ``functions`` command."""
    return Connection(
        auth_plugin=args.auth_plugin or None,
        auth_params=args.auth_params or None,
        tls_trust_cert_path=args.tls_trust_cert_path or None,
        tls_allow_insecure=args.tls_allow_insecure,
        tls_hostname_verification=args.tls_enable_hostname_verification,
    )


def _parent(add: Callable[[argparse.ArgumentParser], object]) -> argparse.ArgumentParser:
    """A parent parser holding a group of flags shared by several actions."""
    parser = argparse.ArgumentParser(add_help=False)
    add(parser)
    return parser


def _add_name_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="the function's tenant (default public)")
    parser.add_argument("--namespace", help="the function's namespace (default default)")
    parser.add_argument("--name", help="the function's name")
    parser.add_argument("--fqfn", help="tenant/namespace/name instead of the three flags")


def _add_detail_flags(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--destination-file", required=True, help="where to write the package")


_ACTION_FLAGS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "trigger": _add_trigger_flags,
    "download": _add_download_flags,
}
