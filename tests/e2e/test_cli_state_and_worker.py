"""``fnworker functions querystate|putstate|upload|download --path`` and the
``fnworker functions-worker`` group as a user types them, against a real ``fnworker
standalone`` process (its embedded broker on a free loopback port): pulsar-admin's
flags, its messages, exit codes, and the worker's reasons on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pulsar
import pytest

from tests.conftest import quiet_client
from tests.integration.worker_process import WorkerProcess, start_worker, stop_worker

REPO = Path(__file__).resolve().parents[2]
FNWORKER = Path(sys.executable).with_name("fnworker")
WORD_COUNT = REPO / "tests" / "fixtures" / "functions" / "word_count_function.py"

pytestmark = pytest.mark.slow


def fnworker(
    group: str, action: str, admin_url: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    """Run ``fnworker GROUP ACTION --admin-url URL FLAGS...``."""
    return subprocess.run(
        [str(FNWORKER), group, action, "--admin-url", admin_url, *flags],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )


def ok(group: str, action: str, admin_url: str, *flags: str) -> str:
    """stdout of a command that must succeed."""
    result = fnworker(group, action, admin_url, *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout


def failed(group: str, action: str, admin_url: str, *flags: str) -> str:
    """stderr of a command that must fail with exit code 1 (and print nothing else)."""
    result = fnworker(group, action, admin_url, *flags)
    assert result.returncode == 1, result.stdout
    assert result.stdout == ""
    return result.stderr


def worker(action: str, admin_url: str, *flags: str) -> Any:
    """The JSON a ``functions-worker`` action prints."""
    return json.loads(ok("functions-worker", action, admin_url, *flags))


@pytest.fixture(scope="module")
def admin_url(standalone_worker: Any) -> str:
    """The standalone worker's REST API, once it knows its leader (itself)."""
    url = str(standalone_worker.admin_url)
    wait_until(
        lambda: fnworker("functions-worker", "get-cluster-leader", url).returncode == 0,
        "the worker knows its leader",
    )
    return url


@pytest.fixture(scope="module")
def word_count(admin_url: str, standalone_worker: Any) -> str:
    """A WordCount function on the worker that has counted 'apple pear' three times
    and 'apple' once more; its name."""
    name = "wordcount"
    ok(
        "functions", "create", admin_url,
        "--name", name,
        "--py", str(WORD_COUNT),
        "--classname", "word_count_function.WordCountFunction",
        "--inputs", f"{name}-in",
        "--output", f"{name}-out",
    )  # fmt: skip
    wait_until(lambda: status(admin_url, name)["numRunning"] == 1, "the function runs")
    with quiet_client(standalone_worker.broker_url, "cli-state-test") as client:
        send(client, f"{name}-in", ["apple pear"] * 3 + ["apple"])
    return name


def status(admin_url: str, name: str) -> dict[str, Any]:
    return dict(json.loads(ok("functions", "status", admin_url, "--name", name)))


def send(client: pulsar.Client, topic: str, payloads: list[str]) -> None:
    producer = client.create_producer(topic)
    for payload in payloads:
        producer.send(payload.encode())
    producer.close()


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.25)


def querystate(admin_url: str, name: str, key: str) -> subprocess.CompletedProcess[str]:
    return fnworker("functions", "querystate", admin_url, "--name", name, "--key", key)


def counted(admin_url: str, name: str, key: str, count: int) -> bool:
    result = querystate(admin_url, name, key)
    return result.returncode == 0 and json.loads(result.stdout).get("numberValue") == count


# --- state --------------------------------------------------------------------


def test_querystate_prints_a_counter_in_pulsars_function_state_shape(
    admin_url: str, word_count: str
) -> None:
    wait_until(lambda: counted(admin_url, word_count, "apple", 4), "apple counted 4 times")
    state = json.loads(ok("functions", "querystate", admin_url, "--name", word_count, "-k", "pear"))
    assert state == {"key": "pear", "numberValue": 3, "version": 3}


def test_putstate_then_querystate_returns_the_value(admin_url: str, word_count: str) -> None:
    value = {"key": "greeting", "stringValue": "hello from the cli"}
    assert ok(
        "functions", "putstate", admin_url,
        "--fqfn", f"public/default/{word_count}",
        "--state", json.dumps(value),
    ) == ""  # fmt: skip
    state = json.loads(
        ok("functions", "querystate", admin_url, "--name", word_count, "--key", "greeting")
    )
    assert state["key"] == "greeting"
    assert state["stringValue"] == "hello from the cli"


def test_querystate_of_a_missing_key_is_the_workers_404(admin_url: str, word_count: str) -> None:
    stderr = failed("functions", "querystate", admin_url, "--name", word_count, "--key", "kiwi")
    assert stderr.startswith("error: ") and "kiwi" in stderr and "(HTTP 404)" in stderr
    assert stderr.count("\n") == 1


def test_querystate_watch_prints_every_second_until_stopped(
    admin_url: str, word_count: str
) -> None:
    process = subprocess.Popen(
        [
            str(FNWORKER), "functions", "querystate", "--admin-url", admin_url,
            "--name", word_count, "--key", "pear", "--watch",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        printed = [json.loads(_read_json(process.stdout)) for _ in range(2)]
        assert printed == [{"key": "pear", "numberValue": 3, "version": 3}] * 2
        process.send_signal(2)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _read_json(stream: Any) -> str:
    """One indented JSON object from ``stream`` (it ends with a line '}')."""
    lines = []
    while not lines or lines[-1] != "}\n":
        line = stream.readline()
        assert line, "querystate --watch ended"
        lines.append(line)
    return "".join(lines)


def test_putstate_with_a_state_that_is_not_function_state_json_sends_nothing(
    admin_url: str, word_count: str
) -> None:
    stderr = failed(
        "functions", "putstate", admin_url, "--name", word_count, "--state", '{"stringValue": "x"}'
    )
    assert stderr == (
        "error: --state has key None; expected a non-empty string, such as "
        '\'{"key": "k", "stringValue": "v"}\'\n'
    )


# --- upload and download by path ---------------------------------------------


def test_upload_then_download_by_path_returns_the_same_bytes(
    admin_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "package.zip"
    source.write_bytes(bytes(range(256)) * 100)
    assert (
        ok("functions", "upload", admin_url, "--source-file", str(source), "--path", "team/a.zip")
        == "Uploaded successfully\n"
    )
    target = tmp_path / "copy.zip"
    assert ok(
        "functions", "download", admin_url, "--path", "team/a.zip",
        "--destination-file", str(target),
    ) == "Downloaded successfully\n"  # fmt: skip
    assert target.read_bytes() == source.read_bytes()


def test_upload_to_a_path_outside_is_refused_with_the_workers_reason(
    admin_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "f.py"
    source.write_text("x = 1\n")
    stderr = failed(
        "functions", "upload", admin_url, "--source-file", str(source), "--path", "../escape.py"
    )
    assert "'../escape.py' is not valid" in stderr and "(HTTP 400)" in stderr


# --- functions-worker -----------------------------------------------------------


def test_get_cluster_and_leader_show_the_worker(admin_url: str) -> None:
    members = worker("get-cluster", admin_url)
    assert len(members) == 1
    assert members[0]["port"] == urlparse(admin_url).port
    leader = worker("get-cluster-leader", admin_url)
    assert leader["workerId"] == members[0]["workerId"]


def test_assignments_and_function_stats_show_the_running_instance(
    admin_url: str, word_count: str
) -> None:
    instance = f"public/default/{word_count}:0"
    leader = worker("get-cluster-leader", admin_url)["workerId"]
    assignments = worker("get-function-assignments", admin_url)
    assert instance in assignments[leader]
    stats = worker("function-stats", admin_url)
    held = {entry["name"]: entry for entry in stats}
    assert held[instance]["running"] is True
    metrics = worker("monitoring-metrics", admin_url)
    assert isinstance(metrics, list) and metrics


def test_rebalance_of_a_one_worker_fleet_is_the_workers_400(admin_url: str) -> None:
    stderr = failed("functions-worker", "rebalance", admin_url)
    assert (
        stderr == "error: rebalance needs at least 2 workers in the fleet; there is 1 (HTTP 400)\n"
    )


def test_drain_goes_to_this_worker_or_through_the_leader_to_the_named_one(
    admin_url: str,
) -> None:
    me = worker("get-cluster", admin_url)[0]["workerId"]
    alone = failed("functions-worker", "drain", admin_url)
    assert "drain needs at least 2 workers in the fleet; there is 1 (HTTP 400)" in alone
    unknown = failed("functions-worker", "drain", admin_url, "--worker-id", "nobody")
    assert f"workerId 'nobody' is not a live worker; expected one of ['{me}']" in unknown
    status = worker("get-drain-status", admin_url, "--worker-id", me)
    assert status["status"] == "NOT_RUN"


def test_an_unreachable_worker_is_one_sentence_and_exit_1() -> None:
    stderr = failed("functions-worker", "get-cluster", "http://127.0.0.1:1")
    assert stderr.startswith("error: cannot reach the worker at http://127.0.0.1:1")
    assert stderr.count("\n") == 1


# --- functions-worker on a fleet of two -------------------------------------------


@pytest.fixture
def two_workers(broker: Any, tmp_path: Path, unique_name: str) -> Iterator[list[WorkerProcess]]:
    """Two ``fnworker worker`` processes of one fleet of their own on the test broker."""
    namespace = {"pulsarFunctionsNamespace": f"public/fleet-{unique_name}"}
    workers: list[WorkerProcess] = []
    try:
        for number in range(2):
            workers.append(start_worker(tmp_path / f"w{number}", broker.url, **namespace))
        yield workers
    finally:
        for started in workers:
            stop_worker(started)


def test_rebalance_and_drain_of_a_named_worker_on_a_fleet(
    two_workers: list[WorkerProcess], unique_name: str
) -> None:
    first = two_workers[0].admin_url
    wait_until(lambda: len(worker("get-cluster", first)) == 2, "both workers are members")
    ok(
        "functions", "create", first,
        "--name", unique_name,
        "--py", str(WORD_COUNT),
        "--classname", "word_count_function.WordCountFunction",
        "--inputs", f"{unique_name}-in",
        "--parallelism", "2",
    )  # fmt: skip
    wait_until(lambda: status(first, unique_name)["numRunning"] == 2, "both instances run")
    assert ok("functions-worker", "rebalance", first) == "Rebalance command sent successfully\n"
    leader = worker("get-cluster-leader", first)["workerId"]
    drained = next(w["workerId"] for w in worker("get-cluster", first) if w["workerId"] != leader)
    assert (
        ok("functions-worker", "drain", first, "--worker-id", drained)
        == "Drain command sent successfully\n"
    )
    wait_until(
        lambda: not worker("get-function-assignments", first).get(drained),
        f"{drained} holds no instance",
    )
    wait_until(
        lambda: worker("get-drain-status", first, "--worker-id", drained)["status"] == "SUCCESS",
        "the drain is reported done",
    )
    assert len(worker("get-function-assignments", first)[leader]) == 2
