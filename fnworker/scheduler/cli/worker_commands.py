"""What each ``fnworker functions-worker <action>`` does (pulsar-admin's
``functions-worker`` group): one coroutine per action, returning the text to print.
Does network I/O through ``AdminClient``."""

from __future__ import annotations

import argparse
from urllib.parse import quote

from fnworker.scheduler.cli.admin_client import AdminClient
from fnworker.scheduler.cli.function_commands import Command, pretty

WORKER = "/admin/v2/worker"
WORKER_STATS = "/admin/v2/worker-stats"


def shown(path: str) -> Command:
    """A GET whose JSON answer is printed indented."""

    async def run(client: AdminClient, args: argparse.Namespace) -> str:
        return pretty(await client.call("GET", path))

    return run


async def rebalance(client: AdminClient, args: argparse.Namespace) -> str:
    await client.call("PUT", f"{WORKER}/rebalance")
    return "Rebalance command sent successfully"


def drain_path(args: argparse.Namespace) -> str:
    """This worker's drain, or through the leader the drain of ``--worker-id``."""
    if args.worker_id:
        return f"{WORKER}/leader/drain?workerId={quote(args.worker_id, safe='')}"
    return f"{WORKER}/drain"


async def drain(client: AdminClient, args: argparse.Namespace) -> str:
    await client.call("PUT", drain_path(args))
    return "Drain command sent successfully"


async def drain_status(client: AdminClient, args: argparse.Namespace) -> str:
    return pretty(await client.call("GET", drain_path(args)))


WORKER_COMMANDS: dict[str, Command] = {
    "get-cluster": shown(f"{WORKER}/cluster"),
    "get-cluster-leader": shown(f"{WORKER}/cluster/leader"),
    "get-function-assignments": shown(f"{WORKER}/assignments"),
    "rebalance": rebalance,
    "drain": drain,
    "get-drain-status": drain_status,
    "monitoring-metrics": shown(f"{WORKER_STATS}/metrics"),
    "function-stats": shown(f"{WORKER_STATS}/functionsmetrics"),
}
