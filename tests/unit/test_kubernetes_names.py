"""Job names and label values for the Kubernetes runtime (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnworker.runtimes.kubernetes import names
from fnworker.runtimes.kubernetes.errors import ManifestError

PULSAR_NAME = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=:.",
    min_size=1,
    max_size=80,
)
RFC1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def test_plain_names_keep_pulsars_job_name() -> None:
    assert names.job_name("public", "default", "exclamation") == "pf-public-default-exclamation"


def test_sanitized_names_get_pulsars_hash_suffix() -> None:
    suffix = names.short_hash("public-default-Ex_cl")
    assert names.job_name("public", "default", "Ex_cl") == f"pf-public-default-ex-cl-{suffix}"


def test_custom_job_name_is_always_hash_suffixed() -> None:
    suffix = names.short_hash("orders-public-default-f")
    assert names.job_name("public", "default", "f", custom="orders") == f"orders-{suffix}"


def test_custom_job_name_starting_with_a_digit_gets_a_prefix() -> None:
    assert names.job_name("public", "default", "f", custom="1st").startswith("pf-1st-")


def test_dots_are_replaced_because_the_service_name_cannot_hold_them() -> None:
    name = names.job_name("public", "default", "a.b")
    assert name.startswith("pf-public-default-a-b-") and "." not in name


def test_long_names_are_cut_and_hashed_not_rejected() -> None:
    name = names.job_name("public", "default", "x" * 100)
    assert len(name) == names.JOB_NAME_MAX
    assert name != names.job_name("public", "default", "x" * 99)


@given(PULSAR_NAME, PULSAR_NAME, PULSAR_NAME, st.none() | PULSAR_NAME)
def test_every_job_name_is_a_valid_service_and_statefulset_name(
    tenant: str, namespace: str, name: str, custom: str | None
) -> None:
    job = names.job_name(tenant, namespace, name, custom)
    assert len(job) <= names.JOB_NAME_MAX
    assert RFC1035.fullmatch(job), job


@st.composite
def case_or_punctuation_variant(draw: st.DrawFn) -> tuple[str, str]:
    """A name and another that differs from it only in case or punctuation."""
    original = draw(PULSAR_NAME)
    variant = "".join(
        draw(st.sampled_from([c, c.swapcase(), "-", "_", ".", ":", "="]))
        if not c.isalnum() or draw(st.booleans())
        else c
        for c in original
    )
    return original, variant


@given(PULSAR_NAME, PULSAR_NAME, case_or_punctuation_variant(), st.integers(0, 2))
def test_names_differing_in_case_or_punctuation_never_collide(
    first: str, second: str, pair: tuple[str, str], position: int
) -> None:
    original, variant = pair
    parts_a = [first, second, first]
    parts_b = list(parts_a)
    parts_a[position], parts_b[position] = original, variant
    if parts_a != parts_b:
        assert names.job_name(*parts_a) != names.job_name(*parts_b)


@given(PULSAR_NAME, PULSAR_NAME, PULSAR_NAME)
def test_same_custom_job_name_for_two_functions_never_collides(
    tenant: str, name: str, other: str
) -> None:
    if name != other:
        assert names.job_name(tenant, "ns", name, "shared") != names.job_name(
            tenant, "ns", other, "shared"
        )


@given(st.text(max_size=100))
def test_label_values_are_always_valid(text: str) -> None:
    value = names.label_value(text)
    assert len(value) <= names.LABEL_VALUE_MAX
    assert names.LABEL_VALUE.fullmatch(value)


def test_label_value_follows_pulsars_rule() -> None:
    assert names.label_value("_My:Func_") == "0my-func0"
    assert names.label_value("a" * 70) == "a" * 63


@pytest.mark.parametrize("key", ["team", "example.com/team", "a_b.c-d"])
def test_valid_label_keys_pass(key: str) -> None:
    assert names.check_label_key("customLabels", key) == key


@pytest.mark.parametrize("key", ["", "-team", "Example_com/team", "x" * 64, "a/b/"])
def test_invalid_label_keys_name_the_field(key: str) -> None:
    with pytest.raises(ManifestError, match="customLabels key"):
        names.check_label_key("customLabels", key)


def test_invalid_namespace_is_one_sentence() -> None:
    with pytest.raises(ManifestError, match="jobNamespace 'Functions' is not a valid"):
        names.check_namespace("jobNamespace", "Functions")


def test_pod_dns_name() -> None:
    assert (
        names.pod_dns_name("pf-a-b-c", 2, "fn", ".svc.cluster.local")
        == "pf-a-b-c-2.pf-a-b-c.fn.svc.cluster.local"
    )


@pytest.mark.parametrize("length", range(1, 301))
def test_every_name_kubernetes_derives_fits_for_every_length(length: int) -> None:
    for tenant, namespace, name in (
        ("public", "default", "a" * length),
        ("t" * length, "n", "f"),
        ("public", "default", ("Ab_" * length)[:length]),
    ):
        for custom in (None, "j" * length):
            job = names.job_name(tenant, namespace, name, custom)
            derived = names.derived_names(job, max_ordinal=99_999)
            assert RFC1035.fullmatch(derived["service"]) and len(derived["service"]) <= 63
            pod = derived["pod"]
            assert len(pod) <= 63 and names.RFC1123_LABEL.fullmatch(pod), pod
            revision = derived["controller-revision-hash"]
            assert len(revision) <= 63 and names.LABEL_VALUE.fullmatch(revision), revision


def test_pulsars_truncation_cases() -> None:
    # Pulsar keeps a valid name of up to 53 characters as is; at 53 the revision-hash
    # label of its pods would be 64 characters, so fnworker hashes from 53 on.
    fits = "pf-public-default-" + "f" * 34  # 52 characters: kept as Pulsar keeps it
    assert names.job_name("public", "default", "f" * 34) == fits
    at_53 = names.job_name("public", "default", "f" * 35)
    assert len(at_53) == 52 and at_53.startswith("pf-public-default-fff")
    assert at_53.endswith(names.short_hash("public-default-" + "f" * 35))
    # Pulsar's sanitizing (upper case, '_') and custom job names keep its hash input.
    assert names.job_name("Public", "default", "f") == (
        f"pf-public-default-f-{names.short_hash('Public-default-f')}"
    )
