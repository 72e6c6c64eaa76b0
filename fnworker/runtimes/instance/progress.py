"""Whether an instance makes progress: the marks its message loop leaves, when the
loop should look for a backlog, and the verdict status and metrics draw from the
marks. Pure: no I/O (the loop does the broker calls, see message_loop.py).

Three ways an instance can be running and still get nowhere, each shown in its
status ``error`` and as ``pulsar_function_stalled_seconds`` after a threshold:

- **Stuck handling a message** for ``STALL_SECONDS``: in the user's code, or
  waiting for the broker to take or persist a result. The loop stamps
  ``active_at`` with the time it already reads for its window (one attribute store
  per message) and on every idle receive timeout, so a loop that stops stamping is
  inside one message.
- **Not connected** to the broker for ``DISCONNECTED_SECONDS`` (the client keeps
  reconnecting); looked at while idle, at most once a second.
- **Input the broker does not deliver**: idle for ``BACKLOG_FIRST_CHECK_SECONDS``,
  the loop asks the broker for its input topic's last message id and compares it
  with the last message it received; a backlog seen twice ``BACKLOG_CONFIRM_SECONDS``
  apart, with nothing received for ``STALL_SECONDS``, is a stall. Only where the
  answer means something: one input topic, parallelism 1 (with siblings, a later
  message may be theirs), and a message received before (so the topic is not empty;
  pulsar-lite answers an empty topic with an error it logs). A negative check is
  repeated every ``BACKLOG_RECHECK_SECONDS`` while the instance stays idle (one cheap
  broker request per idle instance that has received something, every 5 s). A check
  the broker does not answer for ``STALL_SECONDS`` is itself reported.
"""

from __future__ import annotations

import msgspec

STALL_SECONDS = 10.0
DISCONNECTED_SECONDS = 5.0
CONNECTION_CHECK_SECONDS = 1.0
BACKLOG_FIRST_CHECK_SECONDS = 1.0
BACKLOG_CONFIRM_SECONDS = 1.0
RECOVERIES_PER_IDLE_PERIOD = 3
BACKLOG_RECHECK_SECONDS = 5.0


class ProgressMarks:
    """Monotonic times the loop thread writes and any thread reads (plain attributes,
    each store atomic under the GIL; a reader may see one mark a moment old)."""

    __slots__ = (
        "active_at",
        "backlog_confirmed",
        "backlog_since",
        "checking_since",
        "disconnected_since",
        "idle_received",
        "idle_since",
        "last_seen",
        "next_backlog_check",
        "next_connection_check",
        "recovered_in_idle",
        "recoveries",
        "resubscribing_since",
    )

    def __init__(self, now: float) -> None:
        self.active_at = now
        self.idle_since: float | None = None
        self.idle_received = -1
        self.disconnected_since: float | None = None
        self.next_connection_check = now
        self.backlog_since: float | None = None
        self.backlog_confirmed = False
        self.next_backlog_check = now + BACKLOG_FIRST_CHECK_SECONDS
        self.checking_since: float | None = None
        self.last_seen = ""
        self.recovered_in_idle = 0
        self.recoveries = 0
        self.resubscribing_since: float | None = None


class Stall(msgspec.Struct, frozen=True, kw_only=True):
    """Why an instance makes no progress, and for how long."""

    kind: str
    seconds: float


def note_idle(marks: ProgressMarks, now: float, received: int) -> None:
    """An idle receive timeout: the loop is alive; a new idle period starts when a
    message arrived since the last one."""
    marks.active_at = now
    if marks.idle_since is None or received != marks.idle_received:
        marks.idle_since, marks.idle_received = now, received
        marks.backlog_since, marks.backlog_confirmed = None, False
        marks.next_backlog_check = now + BACKLOG_FIRST_CHECK_SECONDS
        marks.recovered_in_idle = 0


def connection_check_due(marks: ProgressMarks, now: float) -> bool:
    """Whether to look at the consumer's connection now (and note that it is done)."""
    if now < marks.next_connection_check:
        return False
    marks.next_connection_check = now + CONNECTION_CHECK_SECONDS
    return True


def note_connected(marks: ProgressMarks, now: float, connected: bool) -> None:
    """Record what the consumer said about its connection."""
    if connected:
        marks.disconnected_since = None
    elif marks.disconnected_since is None:
        marks.disconnected_since = now


def note_backlog(marks: ProgressMarks, now: float, backlog: bool | None) -> None:
    """Record a backlog check's answer (None: no answer) and when to check again."""
    if backlog is None:
        marks.next_backlog_check = now + BACKLOG_CONFIRM_SECONDS
    elif backlog:
        marks.backlog_confirmed = marks.backlog_since is not None
        marks.backlog_since = marks.backlog_since or now
        marks.next_backlog_check = now + BACKLOG_CONFIRM_SECONDS
    else:
        marks.backlog_since, marks.backlog_confirmed = None, False
        marks.next_backlog_check = now + BACKLOG_RECHECK_SECONDS


def recovery_due(marks: ProgressMarks) -> bool:
    """Whether to resubscribe now: a confirmed backlog the broker does not deliver, and
    fewer than ``RECOVERIES_PER_IDLE_PERIOD`` tries in this idle period (if they do not
    help, the stall shows in status once the idle period reaches ``STALL_SECONDS``)."""
    return marks.backlog_confirmed and marks.recovered_in_idle < RECOVERIES_PER_IDLE_PERIOD


def note_recovery(marks: ProgressMarks, now: float, *, failed: bool = False) -> None:
    """A resubscribe was done: look for a backlog afresh. After a failed one, no more
    tries in this idle period (on pulsar-lite a refused subscribe drops the whole
    connection, which other functions may share)."""
    marks.recovered_in_idle = RECOVERIES_PER_IDLE_PERIOD if failed else marks.recovered_in_idle + 1
    marks.recoveries += 1
    marks.resubscribing_since = None
    marks.backlog_since, marks.backlog_confirmed = None, False
    marks.next_backlog_check = now + BACKLOG_FIRST_CHECK_SECONDS


def has_backlog(last_on_broker: tuple[int, int], last_received: tuple[int, int]) -> bool:
    """Whether the topic holds an entry after the last one received ((ledger, entry))."""
    return last_on_broker > last_received


def stall_of(marks: ProgressMarks, now: float) -> Stall | None:
    """The instance's stall, if it has one now."""
    checking = marks.checking_since
    if checking is not None:
        waited = now - checking
        return Stall(kind="unanswered", seconds=waited) if waited >= STALL_SECONDS else None
    if marks.resubscribing_since is not None:
        idle = now - (marks.idle_since or marks.resubscribing_since)
        return Stall(kind="backlog", seconds=idle) if idle >= STALL_SECONDS else None
    busy = now - marks.active_at
    if busy >= STALL_SECONDS:
        return Stall(kind="busy", seconds=busy)
    if marks.disconnected_since is not None:
        down = now - marks.disconnected_since
        if down >= DISCONNECTED_SECONDS:
            return Stall(kind="disconnected", seconds=down)
    if marks.backlog_confirmed and marks.idle_since is not None:
        idle = now - marks.idle_since
        if idle >= STALL_SECONDS:
            return Stall(kind="backlog", seconds=idle)
    return None


def describe_stall(stall: Stall, where: str = "", last_seen: str = "") -> str:
    """One sentence for the status ``error``."""
    seconds = f"{stall.seconds:.0f} s"
    if stall.kind == "busy":
        place = f" ({where})" if where else ""
        return (
            f"no progress for {seconds} while input has backlog: the instance has been "
            f"handling one message for {seconds}{place}"
        )
    if stall.kind == "disconnected":
        return (
            f"no progress: not connected to the broker for {seconds} (the client is reconnecting)"
        )
    if stall.kind == "unanswered":
        return (
            f"no progress for {seconds}: the broker has not answered a backlog check for {seconds}"
        )
    after = f" after {last_seen}" if last_seen else ""
    return (
        f"no progress: nothing received for {seconds} while input has backlog (the broker "
        f"holds messages{after} but delivers none to this instance)"
    )
