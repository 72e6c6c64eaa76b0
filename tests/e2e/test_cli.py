"""``fnworker functions ...`` as a user types it, against a real ``fnworker standalone``
process: pulsar-admin's flags, its messages, exit codes and errors on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FNWORKER = Path(sys.executable).with_name("fnworker")
EXAMPLE = REPO / "examples" / "exclamation_function.py"
CLASS = "exclamation_function.ExclamationFunction"

pytestmark = pytest.mark.slow


def fnworker(admin_url: str, action: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run ``fnworker functions ACTION --admin-url URL FLAGS...``."""
    return subprocess.run(
        [str(FNWORKER), "functions", action, "--admin-url", admin_url, *flags],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


def ok(admin_url: str, action: str, *flags: str) -> str:
    """stdout of a command that must succeed."""
    result = fnworker(admin_url, action, *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout


def status(admin_url: str, name: str) -> dict[str, Any]:
    return dict(json.loads(ok(admin_url, "status", "--name", name)))


def wait_running(admin_url: str, name: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while status(admin_url, name)["numRunning"] != count:
        assert time.monotonic() < deadline, f"{name} never had {count} running instances"
        time.sleep(0.25)


def create(admin_url: str, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return fnworker(
        admin_url,
        "create",
        "--tenant",
        "public",
        "--namespace",
        "default",
        "--name",
        name,
        "--py",
        str(EXAMPLE),
        "--classname",
        CLASS,
        "--inputs",
        f"{name}-in",
        "--output",
        f"{name}-out",
        *extra,
    )


@pytest.fixture(scope="module")
def admin_url(standalone_worker: Any) -> str:
    return str(standalone_worker.admin_url)


def test_the_whole_lifecycle_through_the_cli(admin_url: str, tmp_path: Path) -> None:
    name = "cliex"
    created = create(admin_url, name)
    assert (created.returncode, created.stdout) == (0, "Created successfully\n"), created.stderr
    config = json.loads(ok(admin_url, "get", "--fqfn", f"public/default/{name}"))
    assert (
        config["className"] == CLASS
        and config["output"] == f"persistent://public/default/{name}-out"
    )
    assert name in ok(admin_url, "list").split()
    wait_running(admin_url, name, 1)
    assert {"numInstances", "numRunning", "instances"} <= set(status(admin_url, name))

    deadline = time.monotonic() + 60
    while (
        answer := fnworker(admin_url, "trigger", "--name", name, "--trigger-value", "hello")
    ).returncode != 0:
        assert "HTTP 408" in answer.stderr and time.monotonic() < deadline, answer.stderr
    assert answer.stdout == "hello!\n"
    assert json.loads(ok(admin_url, "stats", "--name", name))["receivedTotal"] >= 1

    assert ok(admin_url, "update", "--name", name, "--parallelism", "2") == "Updated successfully\n"
    wait_running(admin_url, name, 2)
    assert ok(admin_url, "stop", "--name", name, "--instance-id", "1") == "Stopped successfully\n"
    wait_running(admin_url, name, 1)
    assert ok(admin_url, "start", "--name", name, "--instance-id", "1") == "Started successfully\n"
    wait_running(admin_url, name, 2)
    assert ok(admin_url, "restart", "--name", name) == "Restarted successfully\n"

    target = tmp_path / "downloaded.py"
    assert (
        ok(admin_url, "download", "--name", name, "--destination-file", str(target))
        == "Downloaded successfully\n"
    )
    assert target.read_bytes() == EXAMPLE.read_bytes()

    assert ok(admin_url, "delete", "--name", name) == "Deleted successfully\n"
    gone = fnworker(admin_url, "get", "--name", name)
    assert gone.returncode == 1
    assert "doesn't exist (HTTP 404)" in gone.stderr


def test_a_config_file_with_flag_overrides(admin_url: str, tmp_path: Path) -> None:
    path = tmp_path / "fn.yaml"
    path.write_text(
        f"name: cliyaml\nclassName: {CLASS}\ninputs: [cliyaml-in]\n"
        "output: cliyaml-out\nparallelism: 3\n"
    )
    result = fnworker(
        admin_url,
        "create",
        "--function-config-file",
        str(path),
        "--py",
        str(EXAMPLE),
        "--parallelism",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(ok(admin_url, "get", "--name", "cliyaml"))["parallelism"] == 1
    ok(admin_url, "delete", "--name", "cliyaml")


def test_a_duplicate_create_exits_1_with_the_reason(admin_url: str) -> None:
    assert create(admin_url, "clidup").returncode == 0
    again = create(admin_url, "clidup")
    assert again.returncode == 1
    assert "already exists (HTTP 409)" in again.stderr
    ok(admin_url, "delete", "--name", "clidup")


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (("--parallelism", "0"), "parallelism 0 is not valid"),
        (("--output", "clibad-in"), "is also an input topic"),
        (("--log-topic", "a/b"), "logTopic 'a/b' is not a valid topic name"),
    ],
)
def test_invalid_configs_exit_1_with_the_servers_reason(
    admin_url: str, flags: tuple[str, ...], reason: str
) -> None:
    result = create(admin_url, "clibad", *flags)
    assert result.returncode == 1
    assert reason in result.stderr and "(HTTP 400)" in result.stderr


def test_usage_mistakes_exit_2(admin_url: str) -> None:
    result = fnworker(admin_url, "create", "--name", "x", "--user-config", "not json")
    assert result.returncode == 2
    assert "argument --user-config" in result.stderr
