"""Leadership from the log: every reader that applies the same records agrees."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fnworker.coordination.protocol.leadership import (
    Leadership,
    claim_due,
    claimed,
    on_claim,
    on_lease,
)
from fnworker.coordination.wire import Claim, Lease
from fnworker.scheduler.model.records import WorkerId, WorkerInfo


def worker(name: str) -> WorkerInfo:
    return WorkerInfo(worker_id=WorkerId(name), worker_hostname="h", port=1)


A, B, C = worker("a"), worker("b"), worker("c")


def test_the_first_claim_for_a_new_term_wins_and_later_ones_lose() -> None:
    state = on_claim(Leadership(), Claim(term=1, candidate=A), now=1.0)
    state = on_claim(state, Claim(term=1, candidate=B), now=1.1)
    assert state.term == 1 and state.leads("a") and not state.leads("b")


def test_a_lease_of_an_older_term_is_ignored() -> None:
    state = on_claim(Leadership(), Claim(term=2, candidate=B), now=1.0)
    stale = on_lease(state, Lease(term=1, leader=A, members=(A, B), seq=9), now=2.0)
    assert stale == state


def test_a_late_reader_learns_the_term_from_a_lease() -> None:
    state = on_lease(Leadership(), Lease(term=7, leader=C, members=(A, C), seq=1), now=3.0)
    assert state.term == 7 and state.leads("c") and state.members == (A, C)


def test_a_lease_from_another_worker_for_the_same_term_is_ignored() -> None:
    state = on_claim(Leadership(), Claim(term=3, candidate=A), now=1.0)
    assert on_lease(state, Lease(term=3, leader=B, members=(B,), seq=1), now=2.0) == state


def test_claims_wait_for_the_lease_timeout_and_the_rank_stagger() -> None:
    state = on_lease(Leadership(), Lease(term=4, leader=A, members=(A, B, C), seq=1), now=10.0)
    assert claim_due(state, "b", now=10.5, lease_timeout=0.6, stagger=0.05) is None
    assert claim_due(state, "b", now=10.61, lease_timeout=0.6, stagger=0.05) == 5
    assert claim_due(state, "c", now=10.61, lease_timeout=0.6, stagger=0.05) is None
    assert claim_due(state, "c", now=10.66, lease_timeout=0.6, stagger=0.05) == 5
    assert claim_due(state, "a", now=99.0, lease_timeout=0.6, stagger=0.05) is None


def test_a_worker_does_not_claim_again_before_its_claim_could_be_seen() -> None:
    state = on_lease(Leadership(), Lease(term=1, leader=A, members=(A, B), seq=1), now=0.0)
    state = claimed(state, 2, now=1.0)
    assert claim_due(state, "b", now=1.2, lease_timeout=0.6, stagger=0.0) is None
    assert claim_due(state, "b", now=1.7, lease_timeout=0.6, stagger=0.0) == 2


records = st.lists(
    st.one_of(
        st.builds(Claim, term=st.integers(1, 6), candidate=st.sampled_from([A, B, C])),
        st.builds(
            Lease,
            term=st.integers(1, 6),
            leader=st.sampled_from([A, B, C]),
            members=st.just((A, B, C)),
            seq=st.integers(0, 5),
        ),
    ),
    max_size=30,
)


@settings(max_examples=200)
@given(records)
def test_every_reader_of_the_same_log_agrees_and_terms_never_go_back(log: list) -> None:  # type: ignore[type-arg]
    def replay(start: float) -> Leadership:
        state, terms = Leadership(), []
        for offset, record in enumerate(log):
            apply = on_claim if isinstance(record, Claim) else on_lease
            state = apply(state, record, start + offset)
            terms.append(state.term)
        assert terms == sorted(terms)
        return state

    first, second = replay(0.0), replay(100.0)
    assert (first.term, first.leader) == (second.term, second.leader)
