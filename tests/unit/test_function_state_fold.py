"""The pure fold of a function's state log: increments add up in any order, puts
and deletes take effect in log order, a clear voids its incarnation, and what a
reader answers in Pulsar's FunctionState shape."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnworker.scheduler.model.function_state import (
    MAX_KEY_BYTES,
    StateEntry,
    StateError,
    StateRecord,
    StateTable,
    check_key,
    entry_with,
    reply_of,
    state_topic,
    value_record,
)

increments = st.lists(st.tuples(st.sampled_from("abc"), st.integers(-5, 5)), max_size=30)


@given(increments)
def test_increments_add_up_whatever_their_order(writes: list[tuple[str, int]]) -> None:
    totals = {}
    for order in itertools.islice(itertools.permutations(writes), 3):
        table = StateTable(1)
        for key, amount in order:
            table.apply(StateRecord(op="incr", key=key, amount=amount, incarnation=1))
        totals[order] = {k: e.number for k, e in table.entries.items()}
    expected = {}
    for key, amount in writes:
        expected[key] = expected.get(key, 0) + amount
    assert all(found == expected for found in totals.values())


def test_puts_and_deletes_follow_the_log_and_versions_count_writes() -> None:
    table = StateTable(7)
    for record in (
        StateRecord(op="put", key="k", value=b"one", text=True, incarnation=7),
        StateRecord(op="put", key="k", value=b"two", text=True, incarnation=7),
        StateRecord(op="incr", key="k", amount=1, incarnation=7),
        StateRecord(op="incr", key="n", amount=2, incarnation=7),
        StateRecord(op="delete", key="gone", incarnation=7),
    ):
        table.apply(record)
    assert table.entry("k") == StateEntry(value=b"two", text=True, version=2, incarnation=7)
    assert table.entry("n") == StateEntry(number=2, version=1, incarnation=7)
    table.apply(StateRecord(op="delete", key="k", incarnation=7))
    assert table.entry("k") is None


def test_a_clear_and_other_incarnations_leave_nothing_behind() -> None:
    table = StateTable(2)
    table.apply(StateRecord(op="incr", key="old", amount=5, incarnation=1))
    table.apply(StateRecord(op="incr", key="n", amount=5, incarnation=2))
    assert set(table.entries) == {"n"}
    table.apply(StateRecord(op="clear", incarnation=2))
    table.apply(StateRecord(op="incr", key="n", amount=1, incarnation=2))
    assert table.entries == {}


def test_own_pending_writes_fold_over_the_table() -> None:
    base = StateEntry(number=10, version=3, incarnation=1)
    pending = [
        StateRecord(op="incr", key="n", amount=2, incarnation=1),
        StateRecord(op="incr", key="other", amount=9, incarnation=1),
    ]
    assert entry_with(base, pending, "n") == StateEntry(number=12, version=4, incarnation=1)
    assert entry_with(None, [StateRecord(op="delete", key="n")], "n") is None


def test_replies_are_pulsars_function_state() -> None:
    encode = msgspec.json.encode
    assert encode(reply_of("n", StateEntry(number=4, version=2))) == (
        b'{"key":"n","numberValue":4,"version":2}'
    )
    assert encode(reply_of("s", StateEntry(value=b"hi", version=1))) == (
        b'{"key":"s","stringValue":"hi","version":1}'
    )
    assert encode(reply_of("b", StateEntry(value=b"\xff", version=1))) == (
        b'{"key":"b","byteValue":"/w==","version":1}'
    )


def test_bad_keys_and_values_are_one_sentence() -> None:
    with pytest.raises(StateError, match="keys must be strings"):
        check_key(b"bytes")
    with pytest.raises(StateError, match="empty"):
        check_key("")
    with pytest.raises(StateError, match=f"at most {MAX_KEY_BYTES} bytes"):
        check_key("é" * MAX_KEY_BYTES)
    with pytest.raises(StateError, match="takes str or bytes"):
        value_record("k", 3, 1)


def test_state_topics_are_per_function_and_never_shared() -> None:
    first = state_topic("public/functions", "a.b/c/d")
    second = state_topic("public/functions", "a/b.c/d")
    assert first != second
    assert first.startswith("persistent://public/functions/state-a.b.c.d-")
