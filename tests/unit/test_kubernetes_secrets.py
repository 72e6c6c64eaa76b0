"""The Kubernetes secrets configurator: secrets map → env from secretKeyRef (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.secrets import check_secrets, secret_env


def test_each_secret_becomes_one_env_var_from_its_secret_sorted_by_name() -> None:
    env = secret_env(
        {
            "PASSWORD": {"path": "db-credentials", "key": "password"},
            "API_KEY": {"path": "api.keys", "key": "primary.key"},
        }
    )
    assert env == [
        {
            "name": "API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "api.keys", "key": "primary.key"}},
        },
        {
            "name": "PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}},
        },
    ]


def test_no_secrets_no_env() -> None:
    assert secret_env({}) == []


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        (
            {"PW": "plain-text"},
            r"^secrets.PW is 'plain-text'; the Kubernetes secrets configurator expects \{path",
        ),
        ({"PW": {"path": "s"}}, r"^secrets.PW is \{'path': 's'\}; .* expects"),
        ({"PW": {"path": "s", "key": "k", "x": 1}}, "^secrets.PW is"),
        (
            {"PW": {"path": "Bad_Name", "key": "k"}},
            r"^secrets.PW.path 'Bad_Name' is not a valid Secret name",
        ),
        ({"PW": {"path": "s", "key": "a/b"}}, r"^secrets.PW.key 'a/b' is not a valid Secret field"),
        ({"PW": {"path": "s", "key": 3}}, r"^secrets.PW.key 3 is not a valid Secret field"),
        ({"1PW": {"path": "s", "key": "k"}}, "^secrets key '1PW' is not a valid environment"),
    ],
)
def test_bad_shapes_are_one_sentence_naming_the_entry(
    secrets: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError, match=message) as caught:
        check_secrets(secrets)
    assert "\n" not in str(caught.value)
