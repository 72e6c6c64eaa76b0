"""``fnworker functions querystate|putstate|upload|download --path``: a function's
state through the worker's REST API in Pulsar's FunctionState JSON, and files stored
by path. Each returns the text to print. Does network and file I/O."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio

from fnworker.scheduler.cli.admin_client import FUNCTIONS, AdminClient, function_path
from fnworker.scheduler.cli.function_config import CliError, function_names

WATCH_SECONDS = 1.0
"""How often ``querystate --watch`` asks again (pulsar-admin's interval)."""
STATE_EXAMPLE = '\'{"key": "k", "stringValue": "v"}\''


def state_path(args: argparse.Namespace, key: str) -> str:
    """``.../{tenant}/{namespace}/{name}/state/{key}``."""
    return function_path(*function_names(args), "state", key)


async def querystate(client: AdminClient, args: argparse.Namespace) -> str:
    """The FunctionState under ``--key``; with ``--watch``, printed every second until
    Ctrl-C (a missing key is then reported on stderr, and asked again)."""
    path = state_path(args, args.key)
    if not args.watch:
        return pretty_state(await client.call("GET", path))
    while True:
        try:
            print(pretty_state(await client.call("GET", path)), flush=True)
        except CliError as error:
            if "(HTTP 404)" not in str(error):
                raise
            print(f"error: {error}", file=sys.stderr, flush=True)
        await anyio.sleep(WATCH_SECONDS)


def pretty_state(body: bytes) -> str:
    """A FunctionState answer, indented, without the fields it leaves empty (as
    pulsar-admin's Gson printing omits nulls)."""
    state = json.loads(body)
    if isinstance(state, dict):
        state = {field: value for field, value in state.items() if value is not None}
    return json.dumps(state, indent=2)


def parsed_state(text: str) -> dict[str, Any]:
    """``--state`` as a FunctionState mapping with a non-empty string key."""
    try:
        state = json.loads(text)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise CliError(
            f"--state {text[:80]} is not valid; expected a FunctionState JSON object "
            f"such as {STATE_EXAMPLE}"
        )
    key = state.get("key")
    if not isinstance(key, str) or not key:
        raise CliError(
            f"--state has key {key!r}; expected a non-empty string, such as {STATE_EXAMPLE}"
        )
    return state


async def putstate(client: AdminClient, args: argparse.Namespace) -> str:
    """POST the FunctionState as the multipart part ``state``, as Pulsar's admin client
    sends it, to the path of its key. pulsar-admin prints nothing on success."""
    state = parsed_state(args.state)
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("state", json.dumps(state), content_type="application/json")
    await client.call("POST", state_path(args, state["key"]), form)
    return ""


async def upload(client: AdminClient, args: argparse.Namespace) -> str:
    """Store ``--source-file`` on the worker under ``--path``."""
    source = Path(args.source_file)
    try:
        data = source.read_bytes()
    except OSError as error:
        raise CliError(f"--source-file {source} cannot be read: {error.strerror}") from None
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("data", data, filename=source.name, content_type="application/octet-stream")
    form.add_field("path", args.path)
    await client.call("POST", f"{FUNCTIONS}/upload", form)
    return "Uploaded successfully"


async def download_path(client: AdminClient, args: argparse.Namespace) -> str:
    """Write the file stored under ``--path`` to ``--destination-file``."""
    await client.download(
        f"{FUNCTIONS}/download?path={quote(args.path, safe='')}", Path(args.destination_file)
    )
    return "Downloaded successfully"
