"""``fnworker functions localrun`` as a user runs it: a real process against a real
pulsar-lite broker, pulsar-admin's flags, messages in and out, Ctrl-C (SIGINT) or
SIGTERM ends it with exit code 0 and no process left, bad input is one sentence and
exit code 1. Every process is stopped by PID."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker, pid_alive
from tests.conftest import quiet_client

REPO = Path(__file__).resolve().parents[2]
FNWORKER = Path(sys.executable).with_name("fnworker")
EXCLAMATION = REPO / "examples" / "exclamation_function.py"
WORD_COUNT = REPO / "tests" / "fixtures" / "functions" / "word_count_function.py"
STOP_SECONDS = 10.0

pytestmark = pytest.mark.slow


class LocalRun:
    """A running ``fnworker functions localrun`` and its terminal output."""

    def __init__(self, log_path: Path, *flags: str) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(FNWORKER), "functions", "localrun", *flags],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self, instances: int, timeout: float = 30.0) -> None:
        """Until the log shows ``instances`` instances started."""
        deadline = time.monotonic() + timeout
        while self.output().count("event='instance started'") < instances:
            assert self.process.poll() is None, f"localrun exited early:\n{self.output()}"
            assert time.monotonic() < deadline, f"instances never started:\n{self.output()}"
            time.sleep(0.1)

    def stop(self, signum: signal.Signals) -> int:
        """Send ``signum``; the exit code, which must come within STOP_SECONDS."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=STOP_SECONDS)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[LocalRun]]:
    """The localruns a test starts; any still running at the end is killed by PID."""
    started: list[LocalRun] = []
    yield started
    for run in started:
        run.kill()


def localrun(runs: list[LocalRun], log_path: Path, *flags: str) -> LocalRun:
    run = LocalRun(log_path, *flags)
    runs.append(run)
    return run


def exchange(
    client: pulsar.Client, source: str, sink: str, payloads: list[str], expected: int
) -> set[str]:
    """Send ``payloads`` to ``source``; the distinct outputs on ``sink`` once there are
    ``expected`` of them (pulsar-lite may deliver an output twice: count distinct)."""
    consumer = client.subscribe(sink, "reader", initial_position=pulsar.InitialPosition.Earliest)
    producer = client.create_producer(source)
    for payload in payloads:
        producer.send(payload.encode())
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while len(seen) < expected and time.monotonic() < deadline:
        try:
            message = consumer.receive(timeout_millis=1000)
        except pulsar.Timeout:
            continue
        seen.add(message.data().decode())
        consumer.acknowledge(message)
    producer.close()
    consumer.close()
    return seen


def test_localrun_runs_the_instances_until_ctrl_c(
    broker: EmbeddedBroker, tmp_path: Path, unique_name: str, runs: list[LocalRun]
) -> None:
    run = localrun(
        runs,
        tmp_path / "localrun.log",
        "--broker-service-url",
        broker.url,
        "--py",
        str(EXCLAMATION),
        "--classname",
        "exclamation_function.ExclamationFunction",
        "--name",
        unique_name,
        "--inputs",
        f"{unique_name}-in",
        "--output",
        f"{unique_name}-out",
        "--parallelism",
        "2",
        "--state-storage-service-url",
        "bk://127.0.0.1:4181",
    )
    run.wait_started(2)
    payloads = [f"m{number}" for number in range(20)]
    with quiet_client(broker.url, "localrun-test") as client:
        outputs = exchange(client, f"{unique_name}-in", f"{unique_name}-out", payloads, 20)
    assert outputs == {f"{payload}!" for payload in payloads}
    assert run.stop(signal.SIGINT) == 0
    assert not pid_alive(run.process.pid)
    output = run.output()
    assert f"public/default/{unique_name}:0" in output
    assert f"public/default/{unique_name}:1" in output
    assert "event='localrun stopped'" in output
    assert (
        "fnworker keeps function state on the broker (one topic per function in the "
        "public/functions namespace) instead of BookKeeper's table service, so "
        "--state-storage-service-url bk://127.0.0.1:4181 is not used." in output
    )


def test_state_lives_on_the_broker_from_one_localrun_to_the_next(
    broker: EmbeddedBroker, tmp_path: Path, unique_name: str, runs: list[LocalRun]
) -> None:
    config_file = tmp_path / "function.yaml"
    config_file.write_text(
        f"name: {unique_name}\n"
        f"py: {WORD_COUNT}\n"
        "className: word_count_function.WordCountFunction\n"
        f"inputs: [{unique_name}-in]\n"
        f"output: {unique_name}-out\n"
        "userConfig: {prefix: 'from-file='}\n"
    )
    flags = (
        "--broker-service-url",
        broker.url,
        "--function-config-file",
        str(config_file),
        "--user-config",
        '{"prefix": "n="}',
    )
    counts: list[set[str]] = []
    for attempt, signum in enumerate((signal.SIGTERM, signal.SIGINT)):
        run = localrun(runs, tmp_path / f"localrun-{attempt}.log", *flags)
        run.wait_started(1)
        with quiet_client(broker.url, "localrun-test") as client:
            counts.append(
                exchange(client, f"{unique_name}-in", f"{unique_name}-out", ["apple pear"] * 3, 3)
            )
        assert run.stop(signum) == 0
    assert counts[0] == {"n=1", "n=2", "n=3"}
    second = sorted(int(count.removeprefix("n=")) for count in counts[1])
    # ATLEAST_ONCE: a message whose ack the first run did not send before it stopped
    # is counted again, so the second run may answer one more; never less.
    assert second[0] == 4 and second[-1] >= 6, counts


def run_to_exit(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FNWORKER), "functions", "localrun", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_a_py_that_does_not_exist_is_one_sentence_and_exit_1(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "function.py"
    result = run_to_exit(
        "--broker-service-url",
        broker.url,
        "--py",
        str(missing),
        "--classname",
        "function.Function",
        "--inputs",
        "in",
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: --py {missing} is not a readable file; expected the path of the "
        "function's .py, .zip or .whl file\n"
    )


@pytest.mark.parametrize(
    ("flags", "sentence"),
    [
        (("--parallelism", "0"), "parallelism 0 is not valid; expected an integer of at least 1"),
        (
            ("--broker-service-url", "http://127.0.0.1:8080"),
            "--broker-service-url http://127.0.0.1:8080 is not valid; expected "
            "pulsar://host:6650 or pulsar+ssl://host:6651",
        ),
        (
            ("--state-namespace", "functions"),
            "--state-namespace functions is not valid; expected tenant/namespace, "
            "such as public/functions",
        ),
    ],
)
def test_bad_flags_are_the_workers_sentence_and_exit_1(
    flags: tuple[str, ...], sentence: str
) -> None:
    result = run_to_exit(
        "--py",
        str(EXCLAMATION),
        "--classname",
        "exclamation_function.ExclamationFunction",
        "--inputs",
        "in",
        *flags,
    )
    assert result.returncode == 1
    assert result.stderr == f"error: {sentence}\n"


def test_no_process_is_left_when_localrun_is_killed_before_it_starts(tmp_path: Path) -> None:
    """A localrun whose instances are still opening (its broker cannot be reached)
    stops on SIGINT with exit code 0 and leaves no process."""
    run = LocalRun(
        tmp_path / "localrun.log",
        "--broker-service-url",
        "pulsar://127.0.0.1:1",
        "--py",
        str(EXCLAMATION),
        "--classname",
        "exclamation_function.ExclamationFunction",
        "--inputs",
        "in",
        "--parallelism",
        "3",
    )
    try:
        deadline = time.monotonic() + 30
        while "event='localrun starting'" not in run.output():
            assert run.process.poll() is None, run.output()
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.1)
        assert run.stop(signal.SIGINT) == 0
        assert not pid_alive(run.process.pid)
    finally:
        run.kill()
