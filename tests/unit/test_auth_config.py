"""Security keys of functions_worker.yml: what the loader refuses (one sentence
naming the key, never a secret), the broker client settings built from them, and
client authentication parameters as Pulsar's clients read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulsar
import pytest

from fnworker.runtimes.broker_client import (
    authentication_of,
    client_options,
    uses_tls,
    with_tls_scheme,
)
from fnworker.scheduler.model.instances import ClientSettings
from fnworker.scheduler.settings.client_credentials import (
    CredentialError,
    PluginCredential,
    TlsCredential,
    TokenCredential,
    parse_credentials,
    read_token,
)
from fnworker.scheduler.settings.config_loader import parse_worker_config
from fnworker.scheduler.settings.worker_config import ConfigError, WorkerConfig
from fnworker.scheduler.worker.worker_service import client_settings_of

TOKEN_PROVIDER = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
TLS_PROVIDER = "org.apache.pulsar.broker.authentication.AuthenticationProviderTls"
TOKEN_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"
SECRET_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3b3JrZXIifQ.c2VjcmV0LXNpZ25hdHVyZQ"


def load(document: dict[str, Any]) -> WorkerConfig:
    return parse_worker_config(document, {}, source="functions_worker.yml").config


def refused(document: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load(document)
    return str(caught.value)


def test_a_secured_worker_yml_loads() -> None:
    config = load(
        {
            "authenticationEnabled": True,
            "authenticationProviders": [TOKEN_PROVIDER],
            "authorizationEnabled": True,
            "superUserRoles": ["admin"],
            "properties": {"tokenSecretKey": "file:///keys/secret.key"},
            "tenantAdminRoles": {"acme": ["acme-admin"]},
            "namespaceFunctionRoles": {"acme/etl": ["etl-bot"]},
            "pulsarServiceUrl": "pulsar+ssl://broker.example:6651",
            "pulsarWebServiceUrl": "https://broker.example:8443",
            "configurationStoreServers": "zk1:2181,zk2:2181",
            "brokerClientAuthenticationPlugin": TOKEN_PLUGIN,
            "brokerClientAuthenticationParameters": f"token:{SECRET_TOKEN}",
            "tlsEnabled": True,
            "workerPort": None,
            "workerPortTls": 6751,
            "tlsCertificateFilePath": "/certs/worker.pem",
            "tlsKeyFilePath": "/certs/worker.key",
            "tlsTrustCertsFilePath": "/certs/ca.pem",
            "tlsRequireTrustedClientCertOnConnect": True,
        }
    )
    assert config.tenant_admin_roles == {"acme": ("acme-admin",)}
    assert config.pulsar_web_service_url.startswith("https://")


@pytest.mark.parametrize(
    ("document", "key", "expected"),
    [
        ({"authorizationEnabled": True}, "authorizationEnabled", "authenticationEnabled"),
        (
            {"authenticationEnabled": True, "authenticationProviders": ["org.example.Kerberos"]},
            "authenticationProviders",
            "fnworker implements these",
        ),
        (
            {"authenticationEnabled": True, "authenticationProviders": [TOKEN_PROVIDER]},
            "properties.tokenSecretKey",
            "AuthenticationProviderToken is enabled",
        ),
        (
            {
                "authenticationEnabled": True,
                "authenticationProviders": [TOKEN_PROVIDER],
                "properties": {"tokenPublicKey": "abc", "tokenPublicAlg": "HS256"},
            },
            "properties.tokenPublicAlg",
            "RS256",
        ),
        (
            {"authenticationEnabled": True, "authenticationProviders": [TLS_PROVIDER]},
            "authenticationProviders",
            "tlsTrustCertsFilePath",
        ),
        ({"tlsRequireTrustedClientCertOnConnect": True}, "tlsTrustCertsFilePath", "CA file"),
        ({"tenantAdminRoles": {"a/b": ["x"]}}, "tenantAdminRoles.a/b", "tenant name"),
        ({"namespaceFunctionRoles": {"acme": ["x"]}}, "namespaceFunctionRoles.acme", "tenant/"),
    ],
)
def test_inconsistent_security_settings_name_the_key(
    document: dict[str, Any], key: str, expected: str
) -> None:
    message = refused(document)
    assert f": {key} = " in message
    assert expected in message


def test_a_secret_of_the_wrong_type_is_redacted() -> None:
    message = refused(
        {
            "authenticationEnabled": True,
            "authenticationProviders": [TOKEN_PROVIDER],
            "properties": {"tokenSecretKey": 123456789012345},
        }
    )
    assert "<redacted>" in message
    assert "123456789012345" not in message


# --- the worker's own broker client ---------------------------------------------------


def test_broker_client_settings_follow_the_config() -> None:
    config = load(
        {
            "pulsarServiceUrl": "pulsar+ssl://broker:6651",
            "authenticationEnabled": True,
            "authenticationProviders": [TOKEN_PROVIDER],
            "properties": {"tokenSecretKey": "abc"},
            "brokerClientAuthenticationPlugin": TOKEN_PLUGIN,
            "brokerClientAuthenticationParameters": "file:///var/run/token",
            "brokerClientTrustCertsFilePath": "/certs/ca.pem",
            "tlsEnableHostnameVerification": True,
        }
    )
    settings = client_settings_of(config)
    assert settings.auth_plugin == TOKEN_PLUGIN
    assert settings.auth_params == "file:///var/run/token"
    options = client_options(settings)
    assert options["use_tls"] is True
    assert options["tls_trust_certs_file_path"] == "/certs/ca.pem"
    assert options["tls_validate_hostname"] is True


def test_broker_client_authentication_can_be_off_while_rest_authentication_is_on() -> None:
    config = load(
        {
            "authenticationEnabled": True,
            "authenticationProviders": [TOKEN_PROVIDER],
            "properties": {"tokenSecretKey": "abc"},
            "brokerClientAuthenticationEnabled": False,
            "brokerClientAuthenticationPlugin": TOKEN_PLUGIN,
            "brokerClientAuthenticationParameters": f"token:{SECRET_TOKEN}",
        }
    )
    assert client_settings_of(config).auth_plugin is None


def test_use_tls_turns_a_pulsar_url_into_pulsar_ssl() -> None:
    config = load({"pulsarServiceUrl": "pulsar://broker:6651", "useTls": True})
    assert client_settings_of(config).service_url == "pulsar+ssl://broker:6651"
    assert with_tls_scheme("pulsar://b:6650", False) == "pulsar://b:6650"
    assert uses_tls("pulsar+ssl://b:6651") and not uses_tls("pulsar://b:6650")


def test_client_authentication_objects_are_built_for_each_plugin(tmp_path: Path) -> None:
    def settings(plugin: str | None, params: str | None) -> ClientSettings:
        return ClientSettings(service_url="pulsar://b:6650", auth_plugin=plugin, auth_params=params)

    token_file = tmp_path / "token"
    token_file.write_text(SECRET_TOKEN + "\n")
    assert authentication_of(settings(None, None)) is None
    assert isinstance(
        authentication_of(settings(TOKEN_PLUGIN, f"token:{SECRET_TOKEN}")),
        pulsar.AuthenticationToken,
    )
    assert isinstance(
        authentication_of(settings(TOKEN_PLUGIN, f"file://{token_file}")),
        pulsar.AuthenticationToken,
    )
    tls = settings(
        "org.apache.pulsar.client.impl.auth.AuthenticationTls", "tlsCertFile:/c,tlsKeyFile:/k"
    )
    assert isinstance(authentication_of(tls), pulsar.AuthenticationTLS)


# --- authentication parameters ----------------------------------------------------------


def test_token_parameters_in_every_form(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {SECRET_TOKEN}\n")
    forms = [f"token:{SECRET_TOKEN}", f'{{"token": "{SECRET_TOKEN}"}}', SECRET_TOKEN]
    for params in forms:
        credential = parse_credentials(TOKEN_PLUGIN, params, setting="s")
        assert credential == TokenCredential(token=SECRET_TOKEN)
        assert SECRET_TOKEN not in repr(credential)
    from_file = parse_credentials("token", f"file://{token_file}", setting="s")
    assert isinstance(from_file, TokenCredential)
    assert read_token(from_file, "s") == SECRET_TOKEN


def test_tls_and_other_plugins() -> None:
    assert parse_credentials(
        "org.apache.pulsar.client.impl.auth.AuthenticationTls",
        "tlsCertFile:/c.pem,tlsKeyFile:/k.pem",
        setting="s",
    ) == TlsCredential(cert_file="/c.pem", key_file="/k.pem")
    assert parse_credentials("tls", '{"tlsCertFile": "/c", "tlsKeyFile": "/k"}', setting="s") == (
        TlsCredential(cert_file="/c", key_file="/k")
    )
    other = parse_credentials("org.example.OAuth2", "secret-ish", setting="s")
    assert isinstance(other, PluginCredential) and "secret-ish" not in repr(other)
    assert parse_credentials(None, "token:x", setting="s") is None


def test_bad_parameters_name_the_setting_only(tmp_path: Path) -> None:
    cases = [
        (TOKEN_PLUGIN, "token:", "holds no token"),
        (TOKEN_PLUGIN, '{"token": ', "not a JSON object"),
        ("tls", "tlsCertFile:/c.pem", "tlsKeyFile"),
    ]
    for plugin, params, expected in cases:
        with pytest.raises(CredentialError, match=expected):
            parse_credentials(plugin, params, setting="--auth-params")
    missing = TokenCredential(file=str(tmp_path / "nope"))
    with pytest.raises(CredentialError, match="cannot be read"):
        read_token(missing, "--auth-params")


def test_the_shipped_tls_token_example_loads_without_warnings() -> None:
    from fnworker.scheduler.settings.config_loader import load_worker_config

    example = Path(__file__).resolve().parents[2] / "config" / "examples" / "tls-token-auth.yml"
    loaded = load_worker_config(example, {})
    assert loaded.warnings == ()
    config = loaded.config
    assert config.worker_port is None and config.worker_port_tls == 6751
    assert client_settings_of(config).service_url.startswith("pulsar+ssl://")
    assert client_settings_of(config).auth_params == "file:///etc/fnworker/tokens/fnworker.jwt"


def test_cli_flags_and_environment_make_the_connection(tmp_path: Path) -> None:
    from fnworker.scheduler.cli.connection import request_headers, ssl_context
    from fnworker.scheduler.cli.function_config import CliError
    from fnworker.scheduler.cli.parser import build_parser, connection_of

    token_file = tmp_path / "token"
    token_file.write_text(SECRET_TOKEN)
    environ = {"FNWORKER_AUTH_PLUGIN": TOKEN_PLUGIN, "FNWORKER_AUTH_PARAMS": f"file://{token_file}"}
    args = build_parser(environ).parse_args(["functions", "list"])
    connection = connection_of(args)
    assert request_headers(connection) == {"Authorization": f"Bearer {SECRET_TOKEN}"}
    assert SECRET_TOKEN not in repr(connection)
    assert ssl_context(connection).check_hostname is True
    flags = build_parser({}).parse_args(
        [
            "functions",
            "get",
            "--name",
            "f",
            "--tls-allow-insecure",
            "--tls-enable-hostname-verification",
            "false",
            "--auth-plugin",
            "org.example.Kerberos",
        ]
    )
    insecure = connection_of(flags)
    assert insecure.tls_allow_insecure and not insecure.tls_hostname_verification
    assert ssl_context(insecure).verify_mode.name == "CERT_NONE"
    with pytest.raises(CliError, match="not supported by the fnworker CLI"):
        request_headers(insecure)
    assert request_headers(connection_of(build_parser({}).parse_args(["functions", "list"]))) == {}


def test_unusable_broker_credentials_are_found_before_start(tmp_path: Path) -> None:
    from fnworker.runtimes.broker_client import credential_problem

    def settings(params: str) -> ClientSettings:
        return ClientSettings(
            service_url="pulsar://b:6650", auth_plugin=TOKEN_PLUGIN, auth_params=params
        )

    problem = credential_problem(settings(f"file://{tmp_path / 'missing'}"))
    assert problem is not None and "brokerClientAuthenticationParameters" in problem
    assert "cannot be read" in problem
    assert credential_problem(settings("token:")) is not None
    assert credential_problem(settings(f"token:{SECRET_TOKEN}")) is None
    assert credential_problem(ClientSettings(service_url="pulsar://b:6650")) is None
