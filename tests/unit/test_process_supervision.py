"""The pure parts of the process runtime: restart backoff, where logs and pid
files go, the command line (no secrets) and the minimal environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnworker.runtimes.process.command import (
    PROCESS_MAIN,
    instance_command,
    instance_environment,
    log_file_of,
)
from fnworker.runtimes.process.outcomes import describe_exit, last_log_line, starting_error
from fnworker.runtimes.process.pid_files import pid_file_of
from fnworker.runtimes.process.restart_policy import (
    RestartPolicy,
    failures_in_a_row,
    restart_delay,
)
from fnworker.runtimes.process.settings import ProcessSettings, settings_from_factory
from fnworker.scheduler.model.instances import ClientSettings, InstanceSpec
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord, instance_id_of
from fnworker.scheduler.settings.worker_config import RuntimeFactoryConfig

POLICY = RestartPolicy()
SETTINGS = ProcessSettings(log_directory=Path("/var/log/fn"), state_directory=Path("/srv/state"))


def spec(provider: str = "clear-text", secrets: dict[str, str] | None = None) -> InstanceSpec:
    fqfn = Fqfn("acme/prod/my-fn")
    config = FunctionConfig(name="my-fn", secrets=secrets or {"token": "s3cret"})
    return InstanceSpec(
        instance=instance_id_of(fqfn, 2),
        index=2,
        function=FunctionRecord(fqfn=fqfn, version=1, config=config),
        package_path=Path("/srv/state/instances/x/m.py"),
        worker_id="w1",
        client=ClientSettings(service_url="pulsar://b:6650", auth_params="token:secret-jwt"),
        secrets_provider=provider,
    )


def test_restart_delays_double_from_half_a_second_up_to_thirty() -> None:
    delays = [restart_delay(n, POLICY) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


@given(st.integers(min_value=0, max_value=10_000))
def test_restart_delay_is_bounded_and_never_shrinks(failures: int) -> None:
    delay = restart_delay(failures, POLICY)
    assert POLICY.initial_delay_seconds <= delay <= POLICY.max_delay_seconds
    assert restart_delay(failures + 1, POLICY) >= delay


def test_a_long_run_forgives_earlier_crashes() -> None:
    assert failures_in_a_row(5, ran_for=2.0, policy=POLICY) == 6
    assert failures_in_a_row(5, ran_for=POLICY.stable_after_seconds, policy=POLICY) == 1


def test_log_and_pid_files_follow_pulsars_layout() -> None:
    instance = instance_id_of(Fqfn("acme/prod/my-fn"), 2)
    assert log_file_of(Path("/logs"), instance) == Path(
        "/logs/functions/acme/prod/my-fn/my-fn-2.log"
    )
    assert pid_file_of(Path("/state"), instance) == Path("/state/processes/acme/prod/my-fn/2.pid")


def test_the_command_line_names_the_instance_and_carries_no_secret() -> None:
    command = instance_command(SETTINGS, spec().instance, control_fd=9)
    assert command[:3] == [sys.executable, "-m", PROCESS_MAIN]
    assert "acme/prod/my-fn:2" in command and "9" in command
    assert str(os.getpid()) in command
    assert "/var/log/fn/functions/acme/prod/my-fn/my-fn-2.log" in command
    assert not any("s3cret" in part or "secret-jwt" in part for part in command)


def test_python_instance_location_replaces_the_module_entry_point() -> None:
    settings = ProcessSettings(
        log_directory=Path("/l"),
        state_directory=Path("/s"),
        python_instance_location=Path("/opt/my_main.py"),
    )
    command = instance_command(settings, spec().instance, control_fd=9)
    assert command[:2] == [sys.executable, "/opt/my_main.py"] and "-m" not in command
    default = msgspec.structs.replace(settings, python_instance_location=None)
    assert command[2:] == instance_command(default, spec().instance, control_fd=9)[3:]


def test_the_environment_is_minimal() -> None:
    worker_env = {
        "PATH": "/usr/bin",
        "HOME": "/home/w",
        "LANG": "en_US.UTF-8",
        "AWS_SECRET_ACCESS_KEY": "nope",
        "token": "from-env",
        "FNWORKER_LOG_FORMAT": "json",
    }
    env = instance_environment(spec(), SETTINGS, worker_env)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/w",
        "LANG": "en_US.UTF-8",
        "FNWORKER_LOG_FORMAT": "json",
    }
    extra = ProcessSettings(
        log_directory=Path("/l"), state_directory=Path("/s"), extra_dependencies_dir=Path("/deps")
    )
    assert instance_environment(spec(), extra, {})["PYTHONPATH"] == "/deps"
    assert instance_environment(spec(), extra, {})["PATH"] == os.defpath


def test_the_environment_provider_gets_exactly_the_named_secrets() -> None:
    worker_env = {"token": "from-env", "other": "not-named"}
    env = instance_environment(spec("environment"), SETTINGS, worker_env)
    assert env["token"] == "from-env" and "other" not in env
    pulsar_name = "org.apache.pulsar.functions.secretsprovider.EnvironmentBasedSecretsProvider"
    assert instance_environment(spec(pulsar_name), SETTINGS, worker_env)["token"] == "from-env"


def test_exits_are_described_in_words() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(-200) == "was killed by signal 200"


def test_the_last_log_line_is_shortened(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert last_log_line(log) == ""
    log.write_text("first\n" + "y" * 500 + "\n\n")
    assert last_log_line(log).startswith("yyy") and len(last_log_line(log)) == 300


def test_settings_from_the_factory_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    factory = RuntimeFactoryConfig(
        log_directory="logs/",
        python_instance_location="bin/main.py",
        extra_function_dependencies_dir="/deps",
        java_instance_jar_location="/opt/java-instance.jar",
    )
    settings = settings_from_factory(factory, Path("state"))
    assert settings.log_directory == tmp_path / "logs"
    assert settings.state_directory == tmp_path / "state"
    assert settings.python_instance_location == tmp_path / "bin/main.py"
    assert settings.extra_dependencies_dir == Path("/deps")


def test_a_process_starting_for_long_says_how_long_and_what_it_waits_for() -> None:
    assert starting_error(None, 100.0, 60) == "the instance process is starting"
    assert starting_error(100.0, 104.0, 60) == "the instance process is starting"
    late = starting_error(100.0, 112.4, 60)
    assert late.startswith("the instance process has not started after 12 s")
    assert "subscribing to its input" in late
    assert "restarted if it has not started within 60 s" in late
