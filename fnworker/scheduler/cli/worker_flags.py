"""The flags of ``fnworker functions-worker <action>`` (pulsar-admin's
``functions-worker`` group). Builds argparse parsers only; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fnworker.scheduler.cli.common_flags import connection_parent

WORKER_ACTIONS = {
    "get-cluster": "list the live workers",
    "get-cluster-leader": "show the leader worker",
    "get-function-assignments": "list which worker runs which instance",
    "rebalance": "even out instances across workers",
    "monitoring-metrics": "print the worker's metrics (Pulsar's Metrics objects)",
    "function-stats": "print the counters of the instances this worker runs",
}
DRAIN_ACTIONS = {
    "drain": "move every instance off a worker",
    "get-drain-status": "show how the last drain of a worker went",
}


def add_functions_worker(commands: Any, admin_url: str, environ: Mapping[str, str]) -> None:
    """The ``functions-worker`` group and every action in it."""
    group = commands.add_parser(
        "functions-worker", help="the worker fleet (pulsar-admin functions-worker)"
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = connection_parent(admin_url, environ)
    for action, help_text in WORKER_ACTIONS.items():
        actions.add_parser(action, parents=[common], help=help_text)
    for action, help_text in DRAIN_ACTIONS.items():
        sub = actions.add_parser(action, parents=[common], help=help_text)
        sub.add_argument(
            "--worker-id",
            help="the worker to drain, through the leader (default: the worker at --admin-url)",
        )
