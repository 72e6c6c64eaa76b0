"""``fnworker functions localrun``'s plan: pulsar-admin's localrun flags into the
broker client settings, the worker's validation of the config, and one InstanceSpec
per instance with its own package copy (real files, no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fnworker.scheduler.cli.function_config import CliError
from fnworker.scheduler.cli.localrun_plan import LocalRun, instance_specs, localrun_plan
from fnworker.scheduler.cli.parser import build_parser

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "exclamation_function.py"
BASE = [
    "functions", "localrun",
    "--py", str(EXAMPLE),
    "--classname", "exclamation_function.ExclamationFunction",
    "--inputs", "in",
]  # fmt: skip


def plan(*flags: str) -> LocalRun:
    return localrun_plan(build_parser({}).parse_args([*BASE, *flags]))


def test_the_client_flags_become_the_instances_client_settings() -> None:
    client = plan(
        "--broker-service-url", "pulsar://broker:6650",
        "--use-tls",
        "--tls-trust-cert-path", "/ca.pem",
        "--tls-allow-insecure",
        "--hostname-verification-enabled",
        "--client-auth-plugin", "org.apache.pulsar.client.impl.auth.AuthenticationToken",
        "--client-auth-params", "token:abc",
    ).client  # fmt: skip
    assert client.service_url == "pulsar+ssl://broker:6650"
    assert client.tls_trust_certs_file_path == "/ca.pem"
    assert client.tls_allow_insecure_connection is True
    assert client.tls_hostname_verification is True
    assert client.auth_params == "token:abc"


def test_defaults_are_pulsar_admins() -> None:
    run = plan()
    assert run.client.service_url == "pulsar://localhost:6650"
    assert run.client.tls_hostname_verification is False
    assert run.state.namespace == "public/functions"
    assert run.record.fqfn == "public/default/ExclamationFunction"
    assert run.record.config.processing_guarantees == "ATLEAST_ONCE"  # the worker's default


def test_unparsable_client_auth_params_name_the_flag() -> None:
    with pytest.raises(CliError, match="--client-auth-params"):
        plan(
            "--client-auth-plugin", "org.apache.pulsar.client.impl.auth.AuthenticationTls",
            "--client-auth-params", "nonsense",
        )  # fmt: skip


def test_a_url_package_is_refused_with_one_sentence() -> None:
    with pytest.raises(CliError, match="localrun runs a local file"):
        plan("--py", "https://example.com/f.py")


def test_each_instance_gets_its_own_copy_numbered_from_the_offset(tmp_path: Path) -> None:
    run = plan("--parallelism", "3", "--instance-id-offset", "2", "--state-namespace", "a/b")
    specs = instance_specs(run, tmp_path)
    assert [spec.instance for spec in specs] == [
        f"public/default/ExclamationFunction:{index}" for index in (2, 3, 4)
    ]
    copies = [spec.package_path for spec in specs]
    assert len(set(copies)) == 3
    for copy in copies:
        assert copy.read_bytes() == EXAMPLE.read_bytes()
        assert tmp_path in copy.parents
    assert {spec.state.namespace for spec in specs} == {"a/b"}
    assert all(spec.function.package is not None for spec in specs)
