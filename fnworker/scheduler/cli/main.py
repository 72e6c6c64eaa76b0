"""The ``fnworker`` console script: parses the command line and runs one command.
Does I/O (the worker, or HTTP calls to it); exit code 0 on success, 1 on an error
(reason on stderr), 2 on a usage mistake.

``standalone``, ``worker`` and ``functions localrun`` import
``fnworker.scheduler.worker.launch`` only when run, so ``fnworker functions ...`` works
in any installation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from fnworker.scheduler.cli.admin_client import admin_client
from fnworker.scheduler.cli.function_commands import COMMANDS, Command
from fnworker.scheduler.cli.function_config import CliError
from fnworker.scheduler.cli.parser import build_parser, connection_of
from fnworker.scheduler.cli.worker_commands import WORKER_COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names (default: the process arguments)."""
    args = build_parser(os.environ).parse_args(argv)
    try:
        if args.command == "functions" and args.action == "localrun":
            return run_localrun(args)
        if args.command == "functions":
            return run_function_command(COMMANDS[args.action], args)
        if args.command == "functions-worker":
            return run_function_command(WORKER_COMMANDS[args.action], args)
        if args.command == "standalone":
            return run_standalone(args)
        if args.command == "kubernetes":
            return run_kubernetes_render(args)
        return run_worker(args)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def run_function_command(command: Command, args: argparse.Namespace) -> int:
    """Run one ``functions`` or ``functions-worker`` action and print what it answers
    (Ctrl-C ends ``querystate --watch``, exit code 0)."""
    try:
        output = asyncio.run(call_worker(command, args))
    except KeyboardInterrupt:
        return 0
    if output:
        print(output)
    return 0


async def call_worker(command: Command, args: argparse.Namespace) -> str:
    """One action against the worker at ``--admin-url``."""
    async with admin_client(args.admin_url, connection_of(args)) as client:
        return await command(client, args)


def run_localrun(args: argparse.Namespace) -> int:
    """``fnworker functions localrun``: the function's instances in the foreground."""
    from fnworker.scheduler.cli.localrun import localrun_command

    return localrun_command(args)


def run_kubernetes_render(args: argparse.Namespace) -> int:
    """``fnworker kubernetes render``: print a function's manifests without applying them."""
    from fnworker.scheduler.cli.kubernetes_commands import render_command

    print(render_command(args, os.environ))
    return 0


def run_standalone(args: argparse.Namespace) -> int:
    """``fnworker standalone``: one worker with an embedded broker."""
    launch = _launch_module()
    extra = {"demo_messages": args.demo_messages} if args.demo_messages is not None else {}
    return int(
        launch.run_standalone(
            config_path=_path(args.config),
            state_dir=_path(args.state_dir),
            port=args.port,
            broker_url=args.broker_url,
            demo=args.demo,
            **extra,
        )
    )


def run_worker(args: argparse.Namespace) -> int:
    """``fnworker worker``: one worker of a fleet."""
    return int(_launch_module().run_worker(Path(args.config), bind_address=args.bind_address))


def _path(value: str | None) -> Path | None:
    """A path flag's value, or None when the flag was not given."""
    return Path(value) if value else None


def _launch_module() -> ModuleType:
    """The module that starts workers, imported only when a worker is started."""
    try:
        from fnworker.scheduler.worker import launch
    except ModuleNotFoundError as error:
        if error.name != "fnworker.scheduler.worker.launch":
            raise
        raise CliError(
            "this installation cannot start a worker: fnworker.scheduler.worker.launch is missing"
        ) from None
    return launch


if __name__ == "__main__":
    sys.exit(main())
