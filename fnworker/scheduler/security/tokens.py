"""Verifies JSON Web Tokens as Pulsar's ``AuthenticationProviderToken`` does and
names the role they carry. Pure: the key is given, and so is the time.

- A secret key (``tokenSecretKey``) verifies HS256, and HS384/HS512 when it is long
  enough; it must hold at least 32 bytes, as Pulsar's token library demands.
- A public key (``tokenPublicKey``) verifies RS*/PS* (RSA) or ES* (EC) tokens;
  ``tokenPublicAlg`` narrows that to one algorithm. ``none`` is never accepted,
  and neither is an HMAC token checked against a public key.
- The role is the ``tokenAuthClaim`` claim (default ``sub``); a list gives its first
  string. ``tokenAudienceClaim`` + ``tokenAudience`` require an audience.
- ``exp`` and ``nbf`` are checked against ``now``; a token without ``exp`` never expires.

Every failure is ``AuthenticationFailed`` whose reason never contains the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import jwt

from fnworker.scheduler.security.key_material import PublicKey
from fnworker.scheduler.settings.security_checks import EC_ALGORITHMS, RSA_ALGORITHMS

SECRET_ALGORITHMS: Final = (("HS256", 32), ("HS384", 48), ("HS512", 64))
MIN_SECRET_BYTES: Final = 32
_DECODE_OPTIONS: Final[Any] = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
}


class AuthenticationFailed(Exception):
    """The caller could not be authenticated; ``reason`` is safe to show them."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenVerifier:
    """Checks tokens against one key and reads the role from them."""

    key: bytes | PublicKey
    algorithms: tuple[str, ...]
    role_claim: str = "sub"
    audience_claim: str | None = None
    audience: str | None = None

    def role_of(self, token: str, now: float) -> str:
        """The role a valid token names at time ``now`` (seconds since the epoch)."""
        claims = self._verified_claims(token)
        _check_time(claims, now)
        self._check_audience(claims)
        return self._role(claims)

    def _verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of a token whose signature verifies."""
        if not token.strip():
            raise AuthenticationFailed("the bearer token is empty; expected a signed JWT")
        try:
            claims = jwt.decode(
                token, self.key, algorithms=list(self.algorithms), options=_DECODE_OPTIONS
            )
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed(
                "the token's signature does not verify with this worker's key"
            ) from None
        except jwt.InvalidAlgorithmError:
            raise AuthenticationFailed(
                "the token's algorithm is not accepted; expected one of "
                + ", ".join(self.algorithms)
            ) from None
        except jwt.PyJWTError:
            raise AuthenticationFailed("the token is not a valid signed JWT") from None
        return claims

    def _check_audience(self, claims: dict[str, Any]) -> None:
        """The configured audience must be the audience claim or one of its items."""
        if self.audience_claim is None:
            return
        given = claims.get(self.audience_claim)
        audiences = given if isinstance(given, list) else [given]
        if self.audience not in audiences:
            raise AuthenticationFailed(
                f"the token's '{self.audience_claim}' claim does not include this worker's "
                f"audience '{self.audience}'"
            )

    def _role(self, claims: dict[str, Any]) -> str:
        """The role claim, or the first string of a list of roles."""
        value = claims.get(self.role_claim)
        if isinstance(value, list):
            value = next((item for item in value if isinstance(item, str)), None)
        if not isinstance(value, str) or not value:
            raise AuthenticationFailed(
                f"the token has no '{self.role_claim}' claim naming a role; expected a string"
            )
        return value


def _check_time(claims: dict[str, Any], now: float) -> None:
    """``exp`` must be in the future and ``nbf`` in the past, when present."""
    expiry = _number(claims, "exp")
    if expiry is not None and now >= expiry:
        raise AuthenticationFailed(f"the token expired at {_iso(expiry)}; expected a fresh token")
    not_before = _number(claims, "nbf")
    if not_before is not None and now < not_before:
        raise AuthenticationFailed(f"the token is not valid before {_iso(not_before)}")


def _number(claims: dict[str, Any], name: str) -> float | None:
    """A numeric date claim, or None when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationFailed(f"the token's '{name}' claim is not a number of seconds")
    return float(value)


def _iso(seconds: float) -> str:
    """A UTC time for messages."""
    try:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f} s after the epoch"


def secret_algorithms(key: bytes) -> tuple[str, ...]:
    """The HMAC algorithms a secret of this length may verify."""
    return tuple(name for name, size in SECRET_ALGORITHMS if len(key) >= size)


def public_algorithms(key: PublicKey, chosen: str | None) -> tuple[str, ...] | None:
    """The algorithms for this key type, or only ``chosen``; None if ``chosen`` does not fit."""
    family = RSA_ALGORITHMS if not hasattr(key, "curve") else EC_ALGORITHMS
    if chosen is None:
        return family
    return (chosen,) if chosen in family else None
