"""How one run of an instance process ended, as one sentence: its exit code or
signal and its last log line; and what a process still starting shows. Reads the
tail of the instance's log file."""

from __future__ import annotations

import signal
from pathlib import Path

import msgspec

STARTING_REPORT_SECONDS = 5.0
"""A process still starting (loading its code, subscribing) after this long says how
long in its status, as the thread runtime's OPENING_REPORT_SECONDS does."""


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one run of an instance process ended (by itself): why, and whether to retry."""

    reason: str
    retry: bool = True


def describe_exit(code: int) -> str:
    """``exited with code 1`` or ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def exit_outcome(pid: int, code: int, log_line: str) -> Outcome:
    """The outcome of a process that ended without last words; the log line is added
    when it exited with an error code (a signal says enough)."""
    reason = f"the instance process (pid {pid}) {describe_exit(code)}"
    return Outcome(
        reason=f"{reason}; its last log line: {log_line}" if log_line and code > 0 else reason
    )


def last_log_line(path: Path, limit: int = 300) -> str:
    """The last non-empty line of a log file, shortened; empty if there is none."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, path.stat().st_size - 4096))
            lines = [line.strip() for line in file.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    text = next((line for line in reversed(lines) if line), "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def starting_error(started_at: float | None, now: float, start_timeout_seconds: float) -> str:
    """What a process that has not said it started shows: that it is starting, and
    after STARTING_REPORT_SECONDS how long it has waited and what for."""
    waited = 0.0 if started_at is None else now - started_at
    if waited < STARTING_REPORT_SECONDS:
        return "the instance process is starting"
    return (
        f"the instance process has not started after {waited:.0f} s: loading its code or "
        "subscribing to its input has not finished (the broker has not answered yet); it is "
        f"restarted if it has not started within {start_timeout_seconds:.0f} s"
    )
