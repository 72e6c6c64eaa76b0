"""Serde names resolve like Pulsar's Python instance resolves them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pulsar.functions.serde import IdentitySerDe, PickleSerDe

from fnworker.runtimes.instance.loader import PackageError, load_function
from fnworker.runtimes.instance.serde import make_serde, serde_class

FUNCTIONS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "functions"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, IdentitySerDe),
        ("", IdentitySerDe),
        ("serde.IdentitySerDe", IdentitySerDe),
        ("IdentitySerDe", IdentitySerDe),
        ("pulsar.functions.serde.IdentitySerDe", IdentitySerDe),
        ("serde.PickleSerDe", PickleSerDe),
        ("PickleSerDe", PickleSerDe),
        ("pulsar.functions.serde.PickleSerDe", PickleSerDe),
    ],
)
def test_builtin_names(name: str | None, expected: type) -> None:
    assert issubclass(serde_class(name), expected)


def same_value(left: object, right: object) -> bool:
    """Equal values of the same type (nan compared by its text)."""
    return type(left) is type(right) and repr(left) == repr(right)


NUMBER_LIKE = st.text(alphabet="0123456789+-._eEjJ() \tinfatyINFATY\u0661\u06f5", max_size=12)
NUMBERS = st.one_of(
    st.integers().map(str),
    st.floats().map(str),
    st.complex_numbers().map(str),
    st.sampled_from(
        [
            "inf",
            "-Infinity",
            "INFINITY",
            "nan",
            "NaN",
            "1_000",
            "\u0661\u0662",
            "(1+2j)",
            ".5e3",
            "J",
            "1j",
        ]
    ),
)
PADDED_NUMBERS = st.tuples(st.sampled_from(["", " ", "\t", "\n "]), NUMBERS).map("".join)


@given(st.one_of(st.text(), st.binary(), NUMBER_LIKE, NUMBERS, PADDED_NUMBERS))
def test_fast_identity_deserializes_exactly_like_pulsar(text: str | bytes) -> None:
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    assert same_value(make_serde(None).deserialize(data), IdentitySerDe().deserialize(data))


def test_user_serde_from_the_package(tmp_path: Path) -> None:
    package = Path(shutil.copy(FUNCTIONS / "serde_functions.py", tmp_path))
    code = load_function(package, "serde_functions.SumFunction", "serde-test")
    try:
        for name in ("serde_functions.JsonSerDe", "JsonSerDe"):
            serde = make_serde(name, code)
            assert type(serde).__name__ == "JsonSerDe"
            assert serde.deserialize(serde.serialize({"b": 1, "a": [2]})) == {"a": [2], "b": 1}
            assert serde.serialize({"b": 1, "a": 2}) == b'{"a": 2, "b": 1}'
    finally:
        code.unload()


def test_unknown_serdes_fail_with_one_sentence() -> None:
    with pytest.raises(
        PackageError, match="serde class 'no_such_module.Thing' could not be imported"
    ):
        serde_class("no_such_module.Thing")
    with pytest.raises(PackageError, match="is not a Pulsar serde"):
        serde_class("MadeUpSerDe")
    with pytest.raises(PackageError, match="is not defined in module 'json'"):
        serde_class("json.NoSuchSerDe")


def test_identity_round_trip_matches_pulsar() -> None:
    serde = make_serde(None)
    assert serde.deserialize(b"hello") == "hello"
    assert serde.deserialize(b"12") == 12
    assert serde.serialize("hi!") == b"hi!"
