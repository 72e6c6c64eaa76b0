"""Tenant, namespace, function and topic names: Pulsar's rules plus fnworker's
path-safety rules, and topic normalization."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.names import (
    check_name,
    is_valid_topic,
    normalize_topic,
    normalize_topics_pattern,
    parse_fqfn,
)

NAME_ALPHABET = st.sampled_from("abcXYZ019_-=:.")
names = st.text(NAME_ALPHABET, min_size=1, max_size=40).filter(
    lambda name: ".." not in name and name != "."
)
local_names = st.text(st.sampled_from("abcXYZ019_-=:.%+~!@$&*()"), min_size=1, max_size=60)


@pytest.mark.parametrize("name", ["public", "my-tenant", "a_b", "x=y", "a:b", "v1.2", "A9"])
def test_names_pulsar_accepts_are_accepted(name: str) -> None:
    assert check_name("tenant", name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "a b", "naïve", "a..b", "..", ".", "x" * 257, "a\nb", "a%b", "a*"],
)
def test_invalid_names_are_400_naming_field_and_value(name: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_name("namespace", name)
    assert caught.value.status == 400
    assert caught.value.reason.startswith(f"namespace '{name}' is not valid; expected letters")


def test_a_name_of_256_characters_is_accepted() -> None:
    assert check_name("function name", "f" * 256) == "f" * 256


def test_parse_fqfn_splits_and_checks() -> None:
    assert parse_fqfn("public/default/ex") == ("public", "default", "ex")
    for bad in ("public/default", "a/b/c/d", "public/de fault/x"):
        with pytest.raises(ApiError):
            parse_fqfn(bad)


@pytest.mark.parametrize(
    ("given_name", "complete"),
    [
        ("my-topic", "persistent://public/default/my-topic"),
        ("tenant/ns/topic", "persistent://tenant/ns/topic"),
        ("persistent://t/ns/topic", "persistent://t/ns/topic"),
        ("non-persistent://t/ns/topic", "non-persistent://t/ns/topic"),
        ("persistent://t/ns/topic-partition-3", "persistent://t/ns/topic-partition-3"),
    ],
)
def test_topics_normalize_as_pulsar_does(given_name: str, complete: str) -> None:
    assert normalize_topic(given_name) == complete


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "a short name must be"),
        ("default/fail", "a short name must be"),
        ("a/b/c/d", "a short name must be"),
        ("domain://tenant/namespace/fail", "its domain 'domain'"),
        ("://tenant/namespace/fail", "its domain ''"),
        ("persistent:///tenant/namespace/fail", "it must have exactly three non-empty parts"),
        ("persistent://tenant/namespace", "it must have exactly three non-empty parts"),
        ("persistent://tenant/namespace/", "it must have exactly three non-empty parts"),
        ("persistent://tenant/cluster/ns/topic", "it must have exactly three non-empty parts"),
        ("persistent://ten ant/ns/topic", "its tenant and namespace"),
        ("persistent://t/n..s/topic", "its tenant and namespace"),
        ("persistent://t/ns/to pic", "its local name"),
        ("to\tpic", "its local name"),
    ],
)
def test_topics_pulsar_rejects_are_400_naming_field_value_and_rule(bad: str, why: str) -> None:
    with pytest.raises(ApiError) as caught:
        normalize_topic(bad, "output")
    assert caught.value.status == 400
    assert caught.value.reason.startswith(f"output '{bad}' is not a valid topic name: {why}")
    assert "expected a topic such as my-topic" in caught.value.reason
    assert not is_valid_topic(bad)


def test_topics_pattern_keeps_its_regex_and_rejects_a_broken_one() -> None:
    assert normalize_topics_pattern("public/default/in-.*") == "persistent://public/default/in-.*"
    with pytest.raises(ApiError) as caught:
        normalize_topics_pattern("persistent://public/default/in-(")
    assert "is not a valid regex" in caught.value.reason


@given(names)
def test_generated_names_are_accepted(name: str) -> None:
    assert check_name("tenant", name) == name


@given(st.sampled_from(["persistent", "non-persistent", None]), names, names, local_names)
def test_generated_topics_are_accepted_and_normalize_idempotently(
    domain: str | None, tenant: str, namespace: str, local: str
) -> None:
    short = f"{tenant}/{namespace}/{local}"
    name = short if domain is None else f"{domain}://{short}"
    complete = normalize_topic(name)
    assert complete == f"{domain or 'persistent'}://{short}"
    assert normalize_topic(complete) == complete


@given(local_names)
def test_generated_short_topics_land_in_public_default(local: str) -> None:
    assert normalize_topic(local) == f"persistent://public/default/{local}"
