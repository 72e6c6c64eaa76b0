"""Token verification with real signatures (PyJWT + cryptography keys) and the ways
Pulsar names a key: file://, data:;base64, env: and bare base64."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest

from fnworker.scheduler.security.key_material import load_public_key, read_key_bytes
from fnworker.scheduler.security.tokens import AuthenticationFailed, TokenVerifier
from fnworker.scheduler.security.web_security import token_verifier
from fnworker.scheduler.settings.worker_config import ConfigError, WorkerConfig
from tests.certs import ec_key, new_secret, public_der, public_pem, rsa_key, sign

TOKEN = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"


def config_with(**properties: object) -> WorkerConfig:
    return WorkerConfig(
        authentication_enabled=True, authentication_providers=(TOKEN,), properties=properties
    )


def failure(verifier: TokenVerifier, token: str, now: float | None = None) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.role_of(token, time.time() if now is None else now)
    assert token not in caught.value.reason
    return caught.value.reason


# --- key material ---------------------------------------------------------------------


def test_every_pulsar_key_notation_reads_the_same_bytes(tmp_path: Path) -> None:
    secret = new_secret()
    encoded = base64.b64encode(secret).decode()
    (tmp_path / "secret.key").write_bytes(secret)
    notations = [
        f"file://{tmp_path / 'secret.key'}",
        f"data:;base64,{encoded}",
        "env:FNW_TEST_SECRET",
        encoded,
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    ]
    environ = {"FNW_TEST_SECRET": encoded}
    for notation in notations:
        assert read_key_bytes("properties.tokenSecretKey", notation, environ) == secret


def test_key_errors_name_the_setting_and_never_the_key(tmp_path: Path) -> None:
    cases = {
        f"file://{tmp_path / 'missing.key'}": "cannot be read",
        "env:FNW_NOT_SET": "FNW_NOT_SET, which is not set",
        "data:;base64,@@@not-base64@@@": "not valid base64",
        "@@@not-base64@@@": "not valid base64",
        "data:nocomma": "without a comma",
    }
    for notation, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            read_key_bytes("properties.tokenSecretKey", notation, {})
        message = str(caught.value)
        assert message.startswith("properties.tokenSecretKey")
        assert expected in message
        assert "@@@" not in message


def test_public_keys_load_from_der_and_pem() -> None:
    key = rsa_key()
    assert (
        load_public_key("k", public_der(key)).public_numbers() == key.public_key().public_numbers()
    )
    assert (
        load_public_key("k", public_pem(key)).public_numbers() == key.public_key().public_numbers()
    )
    with pytest.raises(ConfigError, match="is not a public key"):
        load_public_key("properties.tokenPublicKey", b"garbage")


# --- HS256 --------------------------------------------------------------------------


def test_a_secret_key_verifies_hs256_and_names_the_subject() -> None:
    secret = new_secret()
    verifier = token_verifier(config_with(tokenSecretKey=base64.b64encode(secret).decode()), {})
    assert verifier.role_of(sign(secret, "alice"), time.time()) == "alice"
    assert verifier.algorithms == ("HS256",)


def test_wrong_key_expired_not_yet_valid_and_garbage_are_refused() -> None:
    secret = new_secret()
    verifier = TokenVerifier(key=secret, algorithms=("HS256",))
    assert "signature" in failure(verifier, sign(new_secret(), "alice"))
    assert "expired" in failure(verifier, sign(secret, "alice", expires_in=-5))
    assert "not valid before" in failure(
        verifier, sign(secret, "alice", nbf=int(time.time()) + 600)
    )
    assert "not a valid signed JWT" in failure(verifier, "not.a.token")
    assert "empty" in failure(verifier, "  ")
    assert "no 'sub' claim" in failure(verifier, sign(secret, None))


def test_time_is_an_input() -> None:
    secret = new_secret()
    verifier = TokenVerifier(key=secret, algorithms=("HS256",))
    now = time.time()
    token = sign(secret, "alice", expires_in=60)
    assert verifier.role_of(token, now) == "alice"
    assert "expired" in failure(verifier, token, now=now + 120)


def test_a_token_without_exp_never_expires() -> None:
    secret = new_secret()
    verifier = TokenVerifier(key=secret, algorithms=("HS256",))
    assert verifier.role_of(sign(secret, "alice", expires_in=None), time.time() + 10**9) == "alice"


def test_the_none_algorithm_is_refused() -> None:
    verifier = TokenVerifier(key=new_secret(), algorithms=("HS256",))
    unsigned = jwt.encode({"sub": "admin"}, None, algorithm="none")
    assert "algorithm" in failure(verifier, unsigned) or "signature" in failure(verifier, unsigned)


def test_a_short_secret_is_a_config_error_like_pulsars() -> None:
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(ConfigError, match="16 bytes; expected at least 32") as caught:
        token_verifier(config_with(tokenSecretKey=short), {})
    assert short not in str(caught.value)


def test_role_claim_list_roles_and_audience() -> None:
    secret = new_secret()
    verifier = TokenVerifier(
        key=secret,
        algorithms=("HS256",),
        role_claim="role",
        audience_claim="aud",
        audience="fnworker",
    )
    assert verifier.role_of(sign(secret, None, role="ops", aud="fnworker"), time.time()) == "ops"
    assert verifier.role_of(
        sign(secret, None, role=["ops", "x"], aud=["a", "fnworker"]), time.time()
    ) == ("ops")
    assert "audience" in failure(verifier, sign(secret, None, role="ops", aud="other"))
    assert "no 'role' claim" in failure(verifier, sign(secret, "alice", aud="fnworker"))


def test_setting_prefix_and_auth_claim_come_from_properties() -> None:
    secret = new_secret()
    config = config_with(
        tokenSettingPrefix="fnw_",
        fnw_tokenSecretKey=base64.b64encode(secret).decode(),
        fnw_tokenAuthClaim="principal",
    )
    verifier = token_verifier(config, {})
    assert verifier.role_of(sign(secret, None, principal="bob"), time.time()) == "bob"


# --- RS256 / ES256 ------------------------------------------------------------------


def test_an_rsa_public_key_verifies_rs256_from_a_der_file(tmp_path: Path) -> None:
    key = rsa_key()
    (tmp_path / "public.key").write_bytes(public_der(key))
    verifier = token_verifier(config_with(tokenPublicKey=f"file://{tmp_path / 'public.key'}"), {})
    assert verifier.role_of(sign(key, "carol", algorithm="RS256"), time.time()) == "carol"
    assert "signature" in failure(verifier, sign(rsa_key(), "carol", algorithm="RS256"))


def test_an_ec_public_key_verifies_es256_with_token_public_alg() -> None:
    key = ec_key()
    encoded = base64.b64encode(public_pem(key)).decode()
    verifier = token_verifier(config_with(tokenPublicKey=encoded, tokenPublicAlg="ES256"), {})
    assert verifier.role_of(sign(key, "dave", algorithm="ES256"), time.time()) == "dave"
    with pytest.raises(ConfigError, match="does not fit"):
        token_verifier(config_with(tokenPublicKey=encoded, tokenPublicAlg="RS256"), {})


def test_an_hmac_token_keyed_with_the_public_key_is_refused() -> None:
    key = rsa_key()
    verifier = TokenVerifier(
        key=load_public_key("k", public_pem(key)), algorithms=("RS256", "RS384", "RS512")
    )
    assert "algorithm" in failure(verifier, _forge_hs256(public_pem(key)))


def _forge_hs256(secret: bytes) -> str:
    """An HS256 token whose HMAC key is the server's public key (algorithm confusion)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "admin"}).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"
