"""The process runtime against a real pulsar-lite broker and real processes: one
OS process per instance, logs in Pulsar's layout, restarts with backoff, bad
packages reported once, secrets kept off the command line and environment, no
orphans when the worker is SIGKILLed, and /metrics from a real worker. Every
process a test starts is ended by PID in its fixtures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pulsar
import pytest
from anyio.from_thread import BlockingPortal
from prometheus_client.parser import text_string_to_metric_families

from fnworker.runtimes.process.command import instance_command, log_file_of
from fnworker.runtimes.process.control import Boot, ControlChannel, HealthCheck, Healthy, Started
from fnworker.runtimes.process.driver import ProcessRuntime
from fnworker.runtimes.process.exit_watchdog import EXIT_ORPHANED
from fnworker.runtimes.process.pid_files import PidRecord, start_ticks, write_pid_file
from fnworker.runtimes.process.restart_policy import RestartPolicy
from fnworker.runtimes.process.settings import ProcessSettings
from fnworker.scheduler.model.instances import InstanceSpec
from tests.e2e.conftest import launch, stop, wait_ready
from tests.e2e.helpers import register, running_count, wait_for
from tests.integration.conftest import (
    EXAMPLES,
    FUNCTIONS,
    SpecMaker,
    produce,
    receive,
    subscribe,
    wait_until,
    zip_package,
)

EXCLAMATION = EXAMPLES / "exclamation_function.py"


def alive(pid: int | None) -> bool:
    """True while ``pid`` is a live process (zombies count as gone)."""
    return pid is not None and start_ticks(pid) is not None


def kill_if_alive(pid: int | None) -> None:
    if alive(pid):
        os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> ProcessSettings:
    """Fast polls and backoff; extraFunctionDependenciesDir holds ``extra_helper``."""
    extra = tmp_path / "extra-deps"
    extra.mkdir()
    (extra / "extra_helper.py").write_text("def tag(value):\n    return 'extra:' + value\n")
    return ProcessSettings(
        log_directory=tmp_path / "logs",
        state_directory=tmp_path / "state",
        extra_dependencies_dir=extra,
        poll_interval_seconds=0.1,
        stop_grace_seconds=3.0,
        restart=RestartPolicy(initial_delay_seconds=0.2, max_delay_seconds=2.0),
    )


@pytest.fixture
def process_runtime(portal: BlockingPortal, settings: ProcessSettings) -> Iterator[ProcessRuntime]:
    """A process runtime whose instance processes are all ended (by PID) after the test."""
    driver = ProcessRuntime(settings)
    yield driver
    pids = [driver.pid(instance) for instance in driver.instances()]
    portal.call(driver.aclose)
    for pid in pids:
        kill_if_alive(pid)


def start(runtime: ProcessRuntime, portal: BlockingPortal, spec: InstanceSpec) -> int:
    """Start an instance, wait until it runs, return its pid."""
    portal.call(runtime.start, spec)
    assert wait_until(lambda: runtime.status(spec.instance).running, 20), runtime.status(
        spec.instance
    )
    pid = runtime.pid(spec.instance)
    assert pid is not None
    return pid


def texts(messages: list[pulsar.Message]) -> list[str]:
    return sorted(m.data().decode() for m in messages)


def wheel_package(target: Path) -> Path:
    """A wheel holding module ``wheelfn`` with a ``Shout`` function class."""
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(
            "wheelfn/__init__.py",
            "from pulsar import Function\n\n"
            "class Shout(Function):\n"
            "    def process(self, value, context):\n"
            "        return value.upper() + '!'\n",
        )
        archive.writestr("wheelfn-1.0.dist-info/METADATA", "Name: wheelfn\nVersion: 1.0\n")
        archive.writestr("wheelfn-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        archive.writestr("wheelfn-1.0.dist-info/RECORD", "")
    return target


def test_a_function_runs_in_its_own_process_with_logs_in_pulsars_layout(
    process_runtime: ProcessRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
    settings: ProcessSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FNWORKER_TEST_LEAK", "worker-only")
    spec = make_spec(
        unique_name,
        FUNCTIONS / "context_function.py",
        class_name="context_function.ContextFunction",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
        user_config={"suffix": "!", "side-topic": f"{unique_name}-side"},
        secrets={"token": "s3cret"},
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    pid = start(process_runtime, portal, spec)

    produce(pulsar_client, f"{unique_name}-in", [b"a", b"bb", b"ccc"], key="k")
    assert texts(receive(reader, 3)) == [
        f"{x}!|key=k|color=None|secret=s3cret" for x in ("a", "bb", "ccc")
    ]
    assert pid != os.getpid()
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"fnworker.runtimes.process.process_main" in command
    assert not any(b"s3cret" in part for part in command)
    environment = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"FNWORKER_TEST_LEAK" not in environment and b"s3cret" not in environment
    assert wait_until(lambda: process_runtime.metrics(spec.instance).received_total == 3)
    metrics = process_runtime.metrics(spec.instance)
    assert metrics.processed_successfully_total == 3
    assert metrics.user_metrics["length_sum"] == 6
    status = process_runtime.status(spec.instance)
    assert status.running and status.num_received == 3 and status.num_restarts == 0

    log_file = settings.log_directory / "functions/public/default" / unique_name
    log_file = log_file / f"{unique_name}-0.log"
    assert log_file_of(settings.log_directory, spec.instance) == log_file
    assert wait_until(lambda: "processing ccc" in log_file.read_text())  # the function's own log

    assert portal.call(process_runtime.reset_metrics, spec.instance)
    assert process_runtime.metrics(spec.instance).received_total == 0
    portal.call(process_runtime.stop, spec.instance)
    assert not alive(pid) and process_runtime.status(spec.instance) is None
    assert not list((settings.state_directory / "processes").rglob("*.pid"))


def test_py_zip_and_wheel_packages_with_extra_dependencies_and_environment_secrets(
    process_runtime: ProcessRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("token", "from-environment")
    (tmp_path / "extra_user.py").write_text(
        "import extra_helper\n\ndef process(value):\n    return extra_helper.tag(value)\n"
    )
    topic = f"{unique_name}-in"
    plain = make_spec(
        f"{unique_name}-py",
        tmp_path / "extra_user.py",
        class_name="extra_user.process",
        inputs=[topic],
        output=f"{unique_name}-py-out",
    )
    zipped = make_spec(
        f"{unique_name}-zip",
        zip_package(FUNCTIONS / "zipped", tmp_path / "z.zip"),
        class_name="zipped_function",
        inputs=[topic],
        output=f"{unique_name}-zip-out",
    )
    wheel = make_spec(
        f"{unique_name}-whl",
        wheel_package(tmp_path / "wheelfn-1.0-py3-none-any.whl"),
        class_name="wheelfn.Shout",
        inputs=[topic],
        output=f"{unique_name}-whl-out",
    )
    secret = make_spec(
        f"{unique_name}-env",
        FUNCTIONS / "context_function.py",
        class_name="context_function.ContextFunction",
        inputs=[topic],
        output=f"{unique_name}-env-out",
        secrets_provider="environment",
        secrets={"token": "ignored"},
        user_config={"suffix": "", "side-topic": f"{unique_name}-side"},
    )
    readers = {
        s.instance: subscribe(pulsar_client, str(s.function.config.output))
        for s in (plain, zipped, wheel, secret)
    }
    for spec in (plain, zipped, wheel, secret):
        portal.call(process_runtime.start, spec)
    for spec in (plain, zipped, wheel, secret):
        assert wait_until(lambda s=spec: process_runtime.status(s.instance).running, 20), (
            process_runtime.status(spec.instance)
        )

    produce(pulsar_client, topic, [b"quiet"])
    assert texts(receive(readers[plain.instance], 1)) == ["extra:quiet"]
    assert texts(receive(readers[zipped.instance], 1)) == ["[one] quiet"]
    assert texts(receive(readers[wheel.instance], 1)) == ["QUIET!"]
    assert texts(receive(readers[secret.instance], 1)) == [
        "quiet|key=|color=None|secret=from-environment"
    ]


def test_a_sigkilled_instance_comes_back_with_num_restarts_1(
    process_runtime: ProcessRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        EXCLAMATION,
        class_name="exclamation_function.ExclamationFunction",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    first = start(process_runtime, portal, spec)

    os.kill(first, signal.SIGKILL)

    def restarted() -> bool:
        status = process_runtime.status(spec.instance)
        return status.running and status.num_restarts == 1

    assert wait_until(restarted, 20), process_runtime.status(spec.instance)
    second = process_runtime.pid(spec.instance)
    assert second != first and alive(second) and not alive(first)
    reasons = [
        e.exception_string for e in process_runtime.status(spec.instance).latest_system_exceptions
    ]
    assert any("was killed by SIGKILL" in reason for reason in reasons), reasons
    produce(pulsar_client, f"{unique_name}-in", [b"again"])
    assert texts(receive(reader, 1)) == ["again!"]


def test_parallelism_2_shares_one_subscription_across_processes(
    process_runtime: ProcessRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    specs = [
        make_spec(
            unique_name,
            EXCLAMATION,
            index=index,
            parallelism=2,
            class_name="exclamation_function.ExclamationFunction",
            inputs=[f"{unique_name}-in"],
            output=f"{unique_name}-out",
        )
        for index in (0, 1)
    ]
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    pids = {start(process_runtime, portal, spec) for spec in specs}
    assert len(pids) == 2

    # Sent one by one (not batched), so the Shared subscription deals them out to both.
    produce(pulsar_client, f"{unique_name}-in", [f"m{i}".encode() for i in range(20)])
    assert texts(receive(reader, 20)) == sorted(f"m{i}!" for i in range(20))
    assert wait_until(
        lambda: sum(process_runtime.metrics(s.instance).received_total for s in specs) == 20
    )
    assert all(process_runtime.metrics(s.instance).received_total > 0 for s in specs)


BAD_PACKAGES = {
    "missing class": ("print('loaded')\n", "bad.Nope", "'Nope' is not defined in module 'bad'"),
    "import error": (
        "import no_such_module_xyz\nclass F:\n    pass\n",
        "bad.F",
        "No module named 'no_such_module_xyz'",
    ),
    "syntax error": ("def broken(:\n", "bad.F", "has a syntax error on line 1"),
}


def test_bad_packages_are_reported_once_and_not_restarted(
    process_runtime: ProcessRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
    settings: ProcessSettings,
) -> None:
    specs = {}
    for number, (case, (source, class_name, _)) in enumerate(BAD_PACKAGES.items()):
        folder = tmp_path / "bad" / str(number)
        folder.mkdir(parents=True)
        (folder / "bad.py").write_text(source)
        specs[case] = make_spec(
            f"{unique_name}-{number}",
            folder / "bad.py",
            class_name=class_name,
            inputs=[f"{unique_name}-in"],
        )
        portal.call(process_runtime.start, specs[case])

    def failed(spec: InstanceSpec) -> bool:
        return "not restarted" in process_runtime.status(spec.instance).error

    for case, spec in specs.items():
        assert wait_until(lambda s=spec: failed(s), 20), (
            case,
            process_runtime.status(spec.instance),
        )
    time.sleep(1.0)  # negative check: no restart in several backoff periods of the test policy
    for case, spec in specs.items():
        status = process_runtime.status(spec.instance)
        expected = BAD_PACKAGES[case][2]
        assert not status.running and status.num_restarts == 0, (case, status)
        assert expected in status.error, (case, status.error)
        assert not alive(process_runtime.pid(spec.instance))
        log_text = log_file_of(settings.log_directory, spec.instance).read_text()
        assert log_text.count(expected) == 1, log_text  # the user's error, written once


def test_a_crashing_process_backs_off_exponentially(
    process_runtime: ProcessRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
) -> None:
    (tmp_path / "crasher.py").write_text("import os\nos._exit(7)\nclass F:\n    pass\n")
    spec = make_spec(
        unique_name, tmp_path / "crasher.py", class_name="crasher.F", inputs=[f"{unique_name}-in"]
    )
    portal.call(process_runtime.start, spec)
    assert wait_until(lambda: "crash loop" in process_runtime.status(spec.instance).error, 20)
    time.sleep(2.0)  # the window the restart rate is measured over (the behaviour under test)
    status = process_runtime.status(spec.instance)
    # Delays 0.2, 0.4, 0.8, 1.6 s (+ ~0.2 s per spawn): a hot loop would restart ~10 times.
    assert 2 <= status.num_restarts <= 6, status
    assert not status.running and "exited with code 7" in status.error


def test_a_crash_looping_instance_says_why_while_it_starts_again(
    process_runtime: ProcessRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
) -> None:
    """Between a crash and the next one, the new process is starting: its status still
    names the crash loop and the exit, not a bare "is starting" (seen by the test above
    when it read the status during a spawn)."""
    (tmp_path / "slow_crasher.py").write_text(
        "import os, time\ntime.sleep(1.0)\nos._exit(7)\nclass F:\n    pass\n"
    )
    spec = make_spec(
        unique_name,
        tmp_path / "slow_crasher.py",
        class_name="slow_crasher.F",
        inputs=[f"{unique_name}-in"],
    )
    portal.call(process_runtime.start, spec)
    assert wait_until(lambda: process_runtime.status(spec.instance).num_restarts >= 1, 20)
    # The second process lives a second while it imports the code: it is starting.
    assert wait_until(lambda: "restarting now" in process_runtime.status(spec.instance).error, 10)
    status = process_runtime.status(spec.instance)
    assert not status.running and "exited with code 7" in status.error


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(
    process_runtime: ProcessRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
    settings: ProcessSettings,
) -> None:
    (tmp_path / "stubborn.py").write_text(
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "def process(value):\n    return value\n"
    )
    spec = make_spec(
        unique_name,
        tmp_path / "stubborn.py",
        class_name="stubborn.process",
        inputs=[f"{unique_name}-in"],
    )
    pid = start(process_runtime, portal, spec)
    began = time.monotonic()
    portal.call(process_runtime.stop, spec.instance)
    assert time.monotonic() - began >= settings.stop_grace_seconds
    assert not alive(pid)


def test_a_leftover_process_from_an_earlier_life_is_ended_on_first_start(
    process_runtime: ProcessRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
    settings: ProcessSettings,
) -> None:
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = settings.state_directory / "processes/public/default/old-fn/0.pid"
        write_pid_file(
            pid_file,
            PidRecord(
                pid=leftover.pid,
                start_ticks=start_ticks(leftover.pid) or 0,
                worker_pid=999_999_999,
                worker_id="worker-1",
                instance="public/default/old-fn:0",
            ),
        )
        reused = settings.state_directory / "processes/public/default/other-fn/0.pid"
        write_pid_file(
            reused,
            PidRecord(
                pid=os.getpid(),
                start_ticks=1,
                worker_pid=1,
                worker_id="worker-1",
                instance="public/default/other-fn:0",
            ),
        )
        spec = make_spec(
            unique_name,
            EXCLAMATION,
            class_name="exclamation_function.ExclamationFunction",
            inputs=[f"{unique_name}-in"],
        )
        start(process_runtime, portal, spec)
        assert leftover.wait(timeout=5) == -signal.SIGTERM
        assert not pid_file.exists() and not reused.exists()
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_python_instance_location_is_the_entry_point(
    portal: BlockingPortal,
    settings: ProcessSettings,
    make_spec: SpecMaker,
    unique_name: str,
    tmp_path: Path,
) -> None:
    entry = tmp_path / "my_instance_main.py"
    entry.write_text(
        "import sys\nfrom pathlib import Path\n"
        "Path(__file__).with_name('entry-used').write_text(' '.join(sys.argv[1:]))\n"
        "from fnworker.runtimes.process.process_main import main\n"
        "sys.exit(main())\n"
    )
    driver = ProcessRuntime(msgspec.structs.replace(settings, python_instance_location=entry))
    spec = make_spec(
        unique_name,
        EXCLAMATION,
        class_name="exclamation_function.ExclamationFunction",
        inputs=[f"{unique_name}-in"],
    )
    pid = None
    try:
        pid = start(driver, portal, spec)
        assert f"--instance {spec.instance} --control-fd" in (tmp_path / "entry-used").read_text()
        assert str(entry).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        portal.call(driver.aclose)
        kill_if_alive(pid)


def start_by_hand(
    spec: InstanceSpec, log_directory: Path, health_timeout: float
) -> tuple[subprocess.Popen[bytes], ControlChannel]:
    """Run process_main as the driver would, with this test as its worker."""
    ours, theirs = socket.socketpair()
    command = instance_command(
        ProcessSettings(log_directory=log_directory, state_directory=log_directory),
        spec.instance,
        theirs.fileno(),
    )
    process = subprocess.Popen(command, pass_fds=(theirs.fileno(),), start_new_session=True)
    theirs.close()
    channel = ControlChannel.worker_end(ours)
    channel.send(Boot(spec=spec, health_timeout_seconds=health_timeout))
    assert isinstance(channel.receive(20), Started)
    return process, channel


def test_an_instance_exits_by_itself_when_its_worker_goes_quiet_or_closes_the_channel(
    make_spec: SpecMaker, unique_name: str, tmp_path: Path
) -> None:
    specs = [
        make_spec(
            unique_name,
            EXCLAMATION,
            index=index,
            class_name="exclamation_function.ExclamationFunction",
            inputs=[f"{unique_name}-in"],
        )
        for index in (0, 1)
    ]
    closed, closed_channel = start_by_hand(specs[0], tmp_path / "closed", health_timeout=30)
    quiet, _quiet_channel = start_by_hand(specs[1], tmp_path / "quiet", health_timeout=1.0)
    try:
        closed_channel.send(HealthCheck())
        assert closed_channel.receive(5) == Healthy(running=True)
        closed_channel.close()
        assert closed.wait(timeout=10) == EXIT_ORPHANED
        assert quiet.wait(timeout=10) == EXIT_ORPHANED
        closed_log = log_file_of(tmp_path / "closed", specs[0].instance).read_text()
        quiet_log = log_file_of(tmp_path / "quiet", specs[1].instance).read_text()
        assert "the worker closed the control channel" in closed_log
        assert "no request from the worker for 1 s" in quiet_log
    finally:
        for process in (closed, quiet):
            if process.poll() is None:
                process.kill()
                process.wait()


# -- a real worker -------------------------------------------------------------------


def metric_values(admin_url: str, name: str, fqfn: str) -> dict[str, float]:
    """``{instance_id: value}`` of one metric family for one function."""
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels["fqfn"] == fqfn:
                values[sample.labels["instance_id"]] = sample.value
    return values


def test_worker_serves_metrics_and_sigkilling_it_leaves_no_instance_process(
    tmp_path: Path, unique_name: str
) -> None:
    config = tmp_path / "worker.yml"
    config.write_text(
        json.dumps(
            {
                "functionRuntimeFactoryClassName": "process",
                "coordinationBackend": "memory",
                "functionRuntimeFactoryConfigs": {"logDirectory": str(tmp_path / "logs")},
            }
        )
    )
    worker = launch(tmp_path / "state", "--config", str(config))
    pids: list[int] = []
    try:
        wait_ready(worker)
        base = worker.admin_url
        assert register(base, unique_name, parallelism=2).status == 200
        wait_for(lambda: running_count(base, unique_name) == 2, timeout=30)
        pid_files = sorted(
            (tmp_path / "state/processes/public/default" / unique_name).glob("*.pid")
        )
        records = [json.loads(p.read_text()) for p in pid_files]
        pids = [r["pid"] for r in records]
        assert len(pids) == 2 and all(r["worker_pid"] == worker.process.pid for r in records)

        client = pulsar.Client(worker.broker_url, operation_timeout_seconds=10)
        try:
            reader = subscribe(client, f"{unique_name}-out")
            produce(client, f"{unique_name}-in", [f"m{i}".encode() for i in range(10)])
            assert len(receive(reader, 10, timeout=20)) == 10
        finally:
            client.close()
        fqfn = f"public/default/{unique_name}"
        processed = "pulsar_function_processed_successfully_total"
        wait_for(lambda: sum(metric_values(base, processed, fqfn).values()) == 10, timeout=10)
        received = metric_values(base, "pulsar_function_received_total", fqfn)
        assert set(received) == {"0", "1"} and sum(received.values()) == 10
        for index in (0, 1):
            log = (
                tmp_path / f"logs/functions/public/default/{unique_name}/{unique_name}-{index}.log"
            )
            assert log.is_file() and log.stat().st_size > 0, log  # one log per instance

        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=5)
        assert wait_until(lambda: not any(alive(pid) for pid in pids), timeout=5), [
            pid for pid in pids if alive(pid)
        ]
    finally:
        stop(worker)
        for pid in pids:
            kill_if_alive(pid)
