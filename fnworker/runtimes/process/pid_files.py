"""Pid files: which process runs each instance, so a restarted worker can end what
its previous life left behind, and never a process that merely reuses a pid. Reads
``/proc``, writes files under the state directory and sends signals."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import structlog

from fnworker.scheduler.model.records import split_fqfn, split_instance_id

log = structlog.get_logger("fnworker.runtime.process")


class PidRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Which process runs an instance: enough to recognise it after a worker restart."""

    pid: int
    start_ticks: int
    worker_pid: int
    worker_id: str
    instance: str


def pid_file_of(state_directory: Path, instance: str) -> Path:
    """``{state}/processes/{tenant}/{ns}/{name}/{index}.pid``."""
    fqfn, index = split_instance_id(instance)
    return state_directory.joinpath("processes", *split_fqfn(fqfn), f"{index}.pid")


def proc_stat(pid: int) -> list[str] | None:
    """Fields 3 onwards of ``/proc/<pid>/stat`` (state, ppid, ...), None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot); None if it is gone or a zombie."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields and fields[0] != "Z" else None


def parent_of(pid: int) -> int | None:
    """The process's parent pid, None if it is gone."""
    fields = proc_stat(pid)
    return int(fields[1]) if fields else None


def write_pid_file(path: Path, record: PidRecord) -> None:
    """Write the record atomically, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(msgspec.json.encode(record))
    temporary.chmod(0o600)
    temporary.replace(path)


def read_pid_file(path: Path) -> PidRecord | None:
    """The record in a pid file, None if missing or unreadable."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=PidRecord)
    except (OSError, msgspec.DecodeError):
        return None


def remove_if_names(path: Path, pid: int) -> None:
    """Remove the pid file if it still names ``pid`` (a newer spawn may have replaced it)."""
    record = read_pid_file(path)
    if record is not None and record.pid == pid:
        path.unlink(missing_ok=True)


def end_leftover(path: Path, worker_id: str, clock: Callable[[], float] = time.monotonic) -> bool:
    """Kill the process a pid file names if it is still that process and no live
    worker other than this one supervises it; remove the file. True if one was killed."""
    record = read_pid_file(path)
    if record is None or start_ticks(record.pid) != record.start_ticks:
        path.unlink(missing_ok=True)
        return False
    orphaned = parent_of(record.pid) != record.worker_pid
    if not orphaned and record.worker_id != worker_id and record.worker_pid != os.getpid():
        log.warning(
            "instance process of another live worker left alone", **msgspec.to_builtins(record)
        )
        return False
    log.warning("ending a leftover instance process", **msgspec.to_builtins(record))
    terminate_pid(record.pid, record.start_ticks, grace=2.0, clock=clock)
    path.unlink(missing_ok=True)
    return True


def terminate_pid(
    pid: int, ticks: int, grace: float, clock: Callable[[], float] = time.monotonic
) -> None:
    """SIGTERM a process that is not our child, SIGKILL it after ``grace`` s; wait until gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if start_ticks(pid) != ticks:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = clock() + wait
        while clock() < deadline and start_ticks(pid) == ticks:
            time.sleep(0.02)
