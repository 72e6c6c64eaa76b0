"""What each ``fnworker functions <action>`` does: one small coroutine per action,
returning the text to print (state and upload actions in ``state_commands``;
``localrun`` calls no worker and lives in ``localrun``). Does network and file I/O
through ``AdminClient``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

import aiohttp
import msgspec

from fnworker.scheduler.cli.admin_client import AdminClient, function_path
from fnworker.scheduler.cli.function_config import (
    CliError,
    config_from_args,
    function_names,
    load_config_file,
)
from fnworker.scheduler.cli.state_commands import download_path, putstate, querystate, upload
from fnworker.scheduler.model.records import FunctionConfig

URL_SCHEMES = ("file", "http", "https")

Command = Callable[[AdminClient, argparse.Namespace], Awaitable[str]]


def pretty(body: bytes) -> str:
    """A JSON answer, indented for reading."""
    return json.dumps(json.loads(body), indent=2)


def action_path(args: argparse.Namespace, action: str) -> str:
    """The path of ``action`` on the function, or on ``--instance-id`` when given."""
    parts = [action] if args.instance_id is None else [str(args.instance_id), action]
    return function_path(*function_names(args), *parts)


def function_form(config: FunctionConfig, py: str | None) -> aiohttp.FormData:
    """The multipart body of a create or update: config plus the package."""
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field(
        "functionConfig", msgspec.json.encode(config).decode(), content_type="application/json"
    )
    if py and urlparse(py).scheme in URL_SCHEMES:
        form.add_field("url", py)
    elif py:
        form.add_field(
            "data",
            _read_file("--py", py),
            filename=Path(py).name,
            content_type="application/octet-stream",
        )
    return form


def _read_file(flag: str, path: str) -> bytes:
    """The content of a file a flag names."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CliError(f"{flag} {path} cannot be read: {error}") from None


def requested_config(args: argparse.Namespace) -> FunctionConfig:
    """The config the flags and ``--function-config-file`` describe."""
    document = load_config_file(args.function_config_file) if args.function_config_file else None
    return config_from_args(args, document)


async def create(client: AdminClient, args: argparse.Namespace) -> str:
    config = requested_config(args)
    path = function_path(*_identity(config))
    await client.call("POST", path, function_form(config, config.py))
    return "Created successfully"


async def update(client: AdminClient, args: argparse.Namespace) -> str:
    config = requested_config(args)
    path = function_path(*_identity(config))
    await client.call("PUT", path, function_form(config, config.py))
    return "Updated successfully"


def _identity(config: FunctionConfig) -> tuple[str, str, str]:
    """tenant, namespace, name of a config built by config_from_args (always set)."""
    return config.tenant or "", config.namespace or "", config.name or ""


async def delete(client: AdminClient, args: argparse.Namespace) -> str:
    await client.call("DELETE", function_path(*function_names(args)))
    return "Deleted successfully"


async def get(client: AdminClient, args: argparse.Namespace) -> str:
    return pretty(await client.call("GET", function_path(*function_names(args))))


async def list_names(client: AdminClient, args: argparse.Namespace) -> str:
    body = await client.call("GET", function_path(args.tenant, args.namespace))
    return "\n".join(json.loads(body))


async def status(client: AdminClient, args: argparse.Namespace) -> str:
    return pretty(await client.call("GET", action_path(args, "status")))


async def stats(client: AdminClient, args: argparse.Namespace) -> str:
    return pretty(await client.call("GET", action_path(args, "stats")))


def lifecycle(action: str, done: str) -> Command:
    """start, stop or restart: a POST and pulsar-admin's message."""

    async def run(client: AdminClient, args: argparse.Namespace) -> str:
        await client.call("POST", action_path(args, action))
        return done

    return run


async def trigger(client: AdminClient, args: argparse.Namespace) -> str:
    form = aiohttp.FormData(default_to_multipart=True)
    if args.trigger_file:
        form.add_field(
            "dataStream", _read_file("--trigger-file", args.trigger_file), filename="value"
        )
    elif args.trigger_value is not None:
        form.add_field("data", args.trigger_value)
    else:
        raise CliError("--trigger-value or --trigger-file is required; expected the value to send")
    if args.topic:
        form.add_field("topic", args.topic)
    body = await client.call("POST", function_path(*function_names(args), "trigger"), form)
    return body.decode("utf-8", "replace")


async def download(client: AdminClient, args: argparse.Namespace) -> str:
    if args.path:
        return await download_path(client, args)
    path = function_path(*function_names(args), "download")
    await client.download(path, Path(args.destination_file))
    return "Downloaded successfully"


COMMANDS: dict[str, Command] = {
    "create": create,
    "update": update,
    "delete": delete,
    "get": get,
    "list": list_names,
    "status": status,
    "stats": stats,
    "start": lifecycle("start", "Started successfully"),
    "stop": lifecycle("stop", "Stopped successfully"),
    "restart": lifecycle("restart", "Restarted successfully"),
    "trigger": trigger,
    "download": download,
    "upload": upload,
    "querystate": querystate,
    "putstate": putstate,
}
