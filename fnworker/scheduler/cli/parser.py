"""The ``fnworker`` command line: ``standalone``, ``worker``, ``functions <action>``
and ``functions-worker <action>`` with pulsar-admin's flag names, and ``kubernetes
render``. Builds argparse parsers only; no I/O. The groups' flags live in
``function_flags``, ``localrun_flags`` and ``worker_flags``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from fnworker.scheduler.cli.admin_client import ADMIN_URL_ENV, DEFAULT_ADMIN_URL
from fnworker.scheduler.cli.common_flags import boolean, connection_of, json_object
from fnworker.scheduler.cli.function_flags import add_functions
from fnworker.scheduler.cli.worker_flags import add_functions_worker

__all__ = ["boolean", "build_parser", "connection_of", "json_object"]


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The whole command line; ``environ`` supplies FNWORKER_ADMIN_URL."""
    parser = argparse.ArgumentParser(
        prog="fnworker", description="A Python functions worker for Apache Pulsar."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    admin_url = environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL
    _add_standalone(commands)
    _add_worker(commands)
    add_functions(commands, admin_url, environ)
    add_functions_worker(commands, admin_url, environ)
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
