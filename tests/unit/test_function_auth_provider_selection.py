"""functionAuthProviderClassName: which values select the Kubernetes secrets token
provider, and the one sentence for a value fnworker does not have."""

from __future__ import annotations

import pytest

from fnworker.runtimes.registry import TOKEN_PROVIDER_CLASS, read_ca, selects_token_provider
from fnworker.scheduler.settings.worker_config import ConfigError, WorkerConfig


def config(name: str | None = None, *, authentication: bool = True) -> WorkerConfig:
    return WorkerConfig(
        function_auth_provider_class_name=name, authentication_enabled=authentication
    )


@pytest.mark.parametrize("name", [None, "", TOKEN_PROVIDER_CLASS, "kubernetes-secrets-token"])
def test_kubernetes_with_authentication_uses_the_token_provider(name: str | None) -> None:
    assert selects_token_provider(config(name), "kubernetes") is True


def test_without_authentication_functions_carry_no_token() -> None:
    assert selects_token_provider(config(None, authentication=False), "kubernetes") is False


def test_thread_and_process_runtimes_take_no_provider() -> None:
    assert selects_token_provider(config(None), "thread") is False
    assert selects_token_provider(config(None), "process") is False


def test_an_unknown_provider_is_one_sentence() -> None:
    with pytest.raises(ConfigError) as raised:
        selects_token_provider(config("com.example.MyProvider"), "kubernetes")
    assert str(raised.value) == (
        "functionAuthProviderClassName 'com.example.MyProvider' is not available; expected "
        f"empty or {TOKEN_PROVIDER_CLASS} (alias kubernetes-secrets-token)"
    )


def test_the_kubernetes_provider_on_another_runtime_is_one_sentence() -> None:
    with pytest.raises(ConfigError, match="applies to the Kubernetes runtime only, and this "
                       "worker runs the process runtime; remove the key"):  # fmt: skip
        selects_token_provider(config(TOKEN_PROVIDER_CLASS), "process")


def test_an_unreadable_ca_names_the_keys() -> None:
    assert read_ca("") is None
    with pytest.raises(
        ConfigError, match="brokerClientTrustCertsFilePath or tlsTrustCertsFilePath"
    ):
        read_ca("/nonexistent/ca.pem")
