"""``fnworker functions ...`` end to end over real loopback HTTP against the REST layer
(with the in-memory admin of test_api_routes): output text, exit codes, errors on stderr."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from aiohttp.test_utils import TestServer

from fnworker.scheduler.api.app import make_app
from fnworker.scheduler.cli.main import main
from tests.unit.test_api_routes import FakeAdmin

pytestmark = pytest.mark.anyio
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "exclamation_function.py"


@pytest.fixture
def admin() -> FakeAdmin:
    return FakeAdmin()


@pytest.fixture
async def admin_url(admin: FakeAdmin) -> AsyncIterator[str]:
    server = TestServer(make_app(admin, max_body_bytes=1 << 20), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def fnworker(admin_url: str, *argv: str) -> int:
    """Run the console script's main in a thread (it runs its own event loop)."""
    return await anyio.to_thread.run_sync(
        main, ["functions", argv[0], "--admin-url", admin_url, *argv[1:]]
    )


async def create(admin_url: str, *extra: str) -> int:
    return await fnworker(
        admin_url,
        "create",
        "--name",
        "ex",
        "--py",
        str(EXAMPLE),
        "--classname",
        "exclamation_function.ExclamationFunction",
        "--inputs",
        "in",
        "--output",
        "out",
        *extra,
    )


async def test_create_uploads_the_py_file_and_says_so(
    admin_url: str, admin: FakeAdmin, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await create(admin_url) == 0
    assert capsys.readouterr().out == "Created successfully\n"
    assert admin.packages["public/default/ex"] == (EXAMPLE.read_bytes(), "exclamation_function.py")


async def test_create_with_a_url_sends_a_url_part(admin_url: str, admin: FakeAdmin) -> None:
    url = EXAMPLE.as_uri()
    code = await fnworker(
        admin_url,
        "create",
        "--name",
        "ex",
        "--py",
        url,
        "--classname",
        "m.C",
        "--inputs",
        "in",
    )
    assert code == 0
    assert ("source", None, url) in admin.calls


async def test_get_status_stats_print_pretty_json(
    admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await create(admin_url)
    capsys.readouterr()
    assert await fnworker(admin_url, "get", "--name", "ex") == 0
    config = json.loads(capsys.readouterr().out)
    assert config["className"] == "exclamation_function.ExclamationFunction"
    assert await fnworker(admin_url, "status", "--name", "ex") == 0
    out = capsys.readouterr().out
    assert json.loads(out)["numInstances"] == 1 and "\n  " in out
    assert (
        await fnworker(admin_url, "stats", "--fqfn", "public/default/ex", "--instance-id", "0") == 0
    )
    assert json.loads(capsys.readouterr().out)["receivedTotal"] == 3


async def test_list_prints_one_name_a_line(
    admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await create(admin_url)
    capsys.readouterr()
    assert await fnworker(admin_url, "list") == 0
    assert capsys.readouterr().out == "ex\n"


async def test_update_start_stop_restart_delete(
    admin_url: str, admin: FakeAdmin, capsys: pytest.CaptureFixture[str]
) -> None:
    await create(admin_url)
    assert await fnworker(admin_url, "update", "--name", "ex", "--parallelism", "2") == 0
    assert admin.records["public/default/ex"].config.parallelism == 2
    assert await fnworker(admin_url, "stop", "--name", "ex", "--instance-id", "0") == 0
    assert await fnworker(admin_url, "start", "--name", "ex") == 0
    assert await fnworker(admin_url, "restart", "--name", "ex") == 0
    assert [call for call in admin.calls if call[0] in ("start", "stop", "restart")] == [
        ("stop", 0),
        ("start", None),
        ("restart", None),
    ]
    assert await fnworker(admin_url, "delete", "--name", "ex") == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "Updated successfully",
        "Stopped successfully",
        "Started successfully",
        "Restarted successfully",
        "Deleted successfully",
    ]
    assert admin.records == {}


async def test_trigger_prints_the_output(
    admin_url: str, admin: FakeAdmin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    await create(admin_url)
    capsys.readouterr()
    assert (
        await fnworker(
            admin_url, "trigger", "--name", "ex", "--trigger-value", "hello", "--topic", "in"
        )
        == 0
    )
    assert capsys.readouterr().out == "hello!\n"
    value = tmp_path / "value.txt"
    value.write_bytes(b"from file")
    assert await fnworker(admin_url, "trigger", "--name", "ex", "--trigger-file", str(value)) == 0
    assert ("trigger", b"from file", None) in admin.calls


async def test_download_writes_the_destination_file(
    admin_url: str, admin: FakeAdmin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "package_path", lambda *names: (EXAMPLE, "exclamation_function.py"))
    target = tmp_path / "got.py"
    assert (
        await fnworker(admin_url, "download", "--name", "ex", "--destination-file", str(target))
        == 0
    )
    assert target.read_bytes() == EXAMPLE.read_bytes()


async def test_server_errors_exit_1_with_the_reason_on_stderr(
    admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await create(admin_url)
    capsys.readouterr()
    assert await create(admin_url) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: Function public/default/ex already exists (HTTP 409)\n"
    assert await fnworker(admin_url, "get", "--name", "nope") == 1
    assert "Function public/default/nope doesn't exist (HTTP 404)" in capsys.readouterr().err


async def test_invalid_configs_exit_1_with_the_servers_reason(
    admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await create(admin_url, "--parallelism", "0") == 1
    assert (
        "parallelism 0 is not valid; expected an integer of at least 1 (HTTP 400)"
        in capsys.readouterr().err
    )


async def test_an_unreachable_worker_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert await fnworker("http://127.0.0.1:9", "list") == 1
    assert capsys.readouterr().err.startswith(
        "error: cannot reach the worker at http://127.0.0.1:9"
    )


async def test_a_missing_py_file_exits_1(
    admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await fnworker(
        admin_url,
        "create",
        "--name",
        "ex",
        "--py",
        "/nonexistent/f.py",
        "--classname",
        "m.C",
        "--inputs",
        "in",
    )
    assert code == 1
    assert capsys.readouterr().err.startswith("error: --py /nonexistent/f.py cannot be read")


def test_standalone_passes_its_flags_to_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    from fnworker.scheduler.worker import launch

    seen: dict[str, Any] = {}
    monkeypatch.setattr(launch, "run_standalone", lambda **kwargs: seen.update(kwargs) or 0)
    monkeypatch.setattr(launch, "run_worker", lambda path, **_: seen.update(worker=path) or 3)
    assert (
        main(
            [
                "standalone",
                "--state-dir",
                "s",
                "--port",
                "7000",
                "--broker-url",
                "pulsar://b:6650",
                "--demo",
            ]
        )
        == 0
    )
    assert seen == {
        "config_path": None,
        "state_dir": Path("s"),
        "port": 7000,
        "broker_url": "pulsar://b:6650",
        "demo": True,
    }
    assert main(["standalone", "--demo-messages", "5"]) == 0
    assert seen["demo_messages"] == 5
    assert main(["worker", "--config", "w.yml"]) == 3
    assert seen["worker"] == Path("w.yml")
