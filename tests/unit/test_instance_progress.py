"""The pure parts of fault containment: the progress verdict an instance's status
and metrics draw from its loop's marks (fnworker/runtimes/instance/progress.py), and which
pulsar client a function's instances use (fnworker/runtimes/client_pool.py)."""

from __future__ import annotations

from fnworker.runtimes.client_pool import client_key_for
from fnworker.runtimes.instance.progress import (
    BACKLOG_CONFIRM_SECONDS,
    BACKLOG_FIRST_CHECK_SECONDS,
    BACKLOG_RECHECK_SECONDS,
    DISCONNECTED_SECONDS,
    RECOVERIES_PER_IDLE_PERIOD,
    STALL_SECONDS,
    ProgressMarks,
    describe_stall,
    has_backlog,
    note_backlog,
    note_connected,
    note_idle,
    note_recovery,
    recovery_due,
    stall_of,
)


def idle_marks(since: float) -> ProgressMarks:
    marks = ProgressMarks(since)
    note_idle(marks, since, received=5)
    return marks


def test_a_loop_busy_in_one_message_stalls_after_the_threshold() -> None:
    marks = ProgressMarks(100.0)
    assert stall_of(marks, 100.0 + STALL_SECONDS - 0.1) is None
    stall = stall_of(marks, 100.0 + STALL_SECONDS + 2)
    assert stall is not None and stall.kind == "busy" and stall.seconds == STALL_SECONDS + 2
    text = describe_stall(stall, where="at f.py:3 in process")
    assert text == (
        "no progress for 12 s while input has backlog: the instance has been handling one "
        "message for 12 s (at f.py:3 in process)"
    )


def test_an_idle_loop_without_backlog_never_stalls() -> None:
    marks = idle_marks(100.0)
    for now in (101.0, 200.0, 10_000.0):
        note_idle(marks, now, received=5)
        assert stall_of(marks, now) is None


def test_a_connection_down_for_long_enough_stalls_and_recovers() -> None:
    marks = idle_marks(100.0)
    note_connected(marks, 100.0, connected=False)
    note_idle(marks, 100.0 + DISCONNECTED_SECONDS, received=5)
    stall = stall_of(marks, 100.0 + DISCONNECTED_SECONDS)
    assert stall is not None and stall.kind == "disconnected"
    note_connected(marks, 106.0, connected=True)
    assert stall_of(marks, 106.0) is None


def test_a_backlog_counts_once_confirmed_and_only_after_the_idle_threshold() -> None:
    marks = idle_marks(100.0)
    assert marks.next_backlog_check == 100.0 + BACKLOG_FIRST_CHECK_SECONDS
    note_backlog(marks, 102.0, backlog=True)  # first sighting: could be in flight
    assert (
        not marks.backlog_confirmed and marks.next_backlog_check == 102.0 + BACKLOG_CONFIRM_SECONDS
    )
    note_backlog(marks, 103.0, backlog=True)
    assert marks.backlog_confirmed and recovery_due(marks)
    note_idle(marks, 105.0, received=5)
    assert stall_of(marks, 105.0) is None  # idle for 5 s only
    stall = stall_of(marks, 100.0 + STALL_SECONDS)
    assert stall is not None and stall.kind == "backlog"
    assert describe_stall(stall, last_seen="entry 1:2").startswith(
        "no progress: nothing received for 10 s while input has backlog (the broker holds "
        "messages after entry 1:2"
    )


def test_a_message_starts_a_new_idle_period_and_forgets_the_backlog() -> None:
    marks = idle_marks(100.0)
    note_backlog(marks, 102.0, backlog=True)
    note_backlog(marks, 103.0, backlog=True)
    note_idle(marks, 104.0, received=6)
    assert marks.idle_since == 104.0 and not marks.backlog_confirmed
    assert marks.backlog_since is None


def test_no_backlog_is_checked_again_later_and_recoveries_per_idle_period_are_few() -> None:
    marks = idle_marks(100.0)
    note_backlog(marks, 102.0, backlog=False)
    assert marks.next_backlog_check == 102.0 + BACKLOG_RECHECK_SECONDS
    now = 107.0
    for _ in range(RECOVERIES_PER_IDLE_PERIOD):
        note_backlog(marks, now, backlog=True)
        note_backlog(marks, now + 1, backlog=True)
        assert recovery_due(marks)
        note_recovery(marks, now + 1)
        assert not recovery_due(marks)
        now += 2
    note_backlog(marks, now, backlog=True)
    note_backlog(marks, now + 1, backlog=True)
    assert not recovery_due(marks)  # they did not help: the stall shows instead
    assert stall_of(marks, now + 1) is not None
    assert marks.recoveries == RECOVERIES_PER_IDLE_PERIOD
    note_idle(marks, now + 2, received=6)  # a message: a new idle period may try again
    note_backlog(marks, now + 3, backlog=True)
    note_backlog(marks, now + 4, backlog=True)
    assert recovery_due(marks)


def test_an_unanswered_backlog_check_is_a_stall_of_its_own() -> None:
    marks = idle_marks(100.0)
    marks.checking_since = 103.0
    assert stall_of(marks, 112.0) is None
    stall = stall_of(marks, 103.0 + STALL_SECONDS)
    assert stall is not None and stall.kind == "unanswered"


def test_backlog_compares_ledger_then_entry() -> None:
    assert has_backlog((1, 5), (1, 4)) and has_backlog((2, 0), (1, 99))
    assert not has_backlog((1, 5), (1, 5)) and not has_backlog((1, 5), (2, 0))


def test_functions_with_many_topics_get_a_client_of_their_own() -> None:
    heavy = client_key_for("t/n/heavy", 11, dedicated_above=10)
    assert heavy.dedicated and heavy.name == "function:t/n/heavy"
    light = client_key_for("t/n/light", 10, shared_clients=4, dedicated_above=10)
    assert not light.dedicated and light.name.startswith("shared-")
    assert client_key_for("t/n/light", 1, shared_clients=4) == client_key_for("t/n/light", 3)
    slots = {client_key_for(f"t/n/f{i}", 1, shared_clients=4).name for i in range(100)}
    assert slots == {"shared-0", "shared-1", "shared-2", "shared-3"}


def test_a_long_resubscribe_shows_as_the_backlog_stall_and_a_failed_one_ends_the_tries() -> None:
    marks = idle_marks(100.0)
    note_backlog(marks, 101.0, backlog=True)
    note_backlog(marks, 102.0, backlog=True)
    marks.resubscribing_since = 102.0
    assert stall_of(marks, 109.0) is None
    stall = stall_of(marks, 100.0 + STALL_SECONDS + 1)  # blocked in subscribe, not "busy"
    assert stall is not None and stall.kind == "backlog"
    note_recovery(marks, 112.0, failed=True)
    assert marks.resubscribing_since is None
    note_backlog(marks, 113.0, backlog=True)
    note_backlog(marks, 114.0, backlog=True)
    assert not recovery_due(marks)
