"""The process runtime: every instance runs the shared instance host in an OS
process of its own (``fnworker.runtimes.process.process_main``), supervised by a
thread of the worker. Implements the RuntimeDriver protocol (name ``process``).
Does process, file and socket I/O; every blocking call runs off the event loop.

Per instance, one supervisor thread spawns the process, hands it the InstanceSpec
over a private control channel (fnworker/runtimes/process/control.py), polls its status and
metrics every ``poll_interval_seconds`` (each poll is also the health check that
keeps the process alive), and restarts it with exponential backoff when it
crashes. A package that does not load is reported once and not restarted. Stop is
SIGTERM, ``stop_grace_seconds`` (``gracePeriodSeconds``, 5 s by default), then
SIGKILL, and the supervisor notices a stop request within ``STOP_NOTICE_SECONDS``
whatever it is waiting for, so stopping never takes much longer than the grace;
the instance ends itself a little before it. The supervisor thread is also the
spawning thread, so Linux's parent-death signal fires exactly when supervision
ends, and a pid file per instance lets a restarted worker end leftovers of its
previous life. Decisions and numbers: docs/process-runtime.md.

One module, as every runtime driver is, in sections: restart policy and settings,
where files go (pure), pid files, the per-instance supervisor, the driver.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import anyio
import msgspec
import structlog

from fnworker.runtimes.instance.stats import now_ms
from fnworker.runtimes.lifecycle import InstanceLifecycle
from fnworker.runtimes.process.control import (
    Boot,
    ChannelClosed,
    ChannelTimeout,
    ControlChannel,
    Exiting,
    GetMetrics,
    GetStatus,
    MetricsReply,
    MetricsReset,
    ResetMetrics,
    Started,
    StatusReply,
)
from fnworker.scheduler.model.instances import InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import (
    ExceptionInformation,
    InstanceId,
    InstanceStatusData,
    split_fqfn,
    split_instance_id,
)
from fnworker.scheduler.settings.worker_config import RuntimeFactoryConfig

PROCESS_MAIN = "fnworker.runtimes.process.process_main"
PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "HOME", "TMPDIR", "TZ")
PASSED_ENVIRONMENT_PREFIXES = ("FNWORKER_LOG_",)
ENVIRONMENT_SECRETS = ("environment", "EnvironmentBasedSecretsProvider")
RECENT_EXITS = 10
STOP_NOTICE_SECONDS = 0.1
"""How long a supervisor waiting for a reply may take to notice a stop request."""
log = structlog.get_logger("fnworker.runtime.process")


class RestartPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Crash restarts: ``initial`` s, doubling up to ``maximum`` s; a run of at least
    ``stable_after`` s forgives earlier crashes."""

    initial_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    stable_after_seconds: float = 60.0


def restart_delay(failures: int, policy: RestartPolicy) -> float:
    """Seconds to wait before the restart that follows ``failures`` crashes in a row."""
    doublings = min(max(failures - 1, 0), 30)
    return float(min(policy.max_delay_seconds, policy.initial_delay_seconds * 2**doublings))


def failures_in_a_row(previous: int, ran_for: float, policy: RestartPolicy) -> int:
    """Crashes in a row after one more crash that followed ``ran_for`` s of running."""
    return 1 if ran_for >= policy.stable_after_seconds else previous + 1


class ProcessSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the process runtime needs besides each instance's spec."""

    log_directory: Path
    state_directory: Path
    python_executable: str = sys.executable
    python_instance_location: Path | None = None
    extra_dependencies_dir: Path | None = None
    stop_grace_seconds: float = 5.0
    poll_interval_seconds: float = 0.5
    request_timeout_seconds: float = 5.0
    missed_polls_before_kill: int = 3
    health_timeout_seconds: float = 15.0
    start_timeout_seconds: float = 60.0
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    restart: RestartPolicy = RestartPolicy()


def settings_from_factory(factory: RuntimeFactoryConfig, state_directory: Path) -> ProcessSettings:
    """ProcessSettings from ``functionRuntimeFactoryConfigs`` (relative paths: the cwd);
    ``gracePeriodSeconds`` bounds each instance's stop, as it bounds a pod's."""
    if factory.java_instance_jar_location:
        log.info("javaInstanceJarLocation is ignored: fnworker runs Python functions only")
    return ProcessSettings(
        log_directory=Path(factory.log_directory or "logs").resolve(),
        state_directory=state_directory.resolve(),
        python_instance_location=optional_path(factory.python_instance_location),
        extra_dependencies_dir=optional_path(factory.extra_function_dependencies_dir),
        stop_grace_seconds=float(factory.grace_period_seconds),
    )


def instance_stop_grace(stop_grace_seconds: float) -> float:
    """How long the instance itself may take to stop after SIGTERM: a little less than
    the supervisor waits before SIGKILL, so it exits by itself and logs why."""
    return stop_grace_seconds - min(1.0, stop_grace_seconds / 2)


def optional_path(value: str | None) -> Path | None:
    """An absolute path, or None for an unset key."""
    return Path(value).resolve() if value else None


# -- where things go (pure) ----------------------------------------------------


def log_file_of(log_directory: Path, instance: str) -> Path:
    """Pulsar's layout: ``{logDirectory}/functions/{tenant}/{ns}/{name}/{name}-{index}.log``."""
    fqfn, index = split_instance_id(instance)
    tenant, namespace, name = split_fqfn(fqfn)
    return log_directory / "functions" / tenant / namespace / name / f"{name}-{index}.log"


def pid_file_of(state_directory: Path, instance: str) -> Path:
    """``{state}/processes/{tenant}/{ns}/{name}/{index}.pid``."""
    fqfn, index = split_instance_id(instance)
    return state_directory.joinpath("processes", *split_fqfn(fqfn), f"{index}.pid")


def instance_command(settings: ProcessSettings, instance: str, control_fd: int) -> list[str]:
    """The command line of an instance process; it carries no secrets."""
    entry = (
        [str(settings.python_instance_location)]
        if settings.python_instance_location
        else ["-m", PROCESS_MAIN]
    )
    options = {
        "--instance": instance,
        "--control-fd": control_fd,
        "--parent-pid": os.getpid(),
        "--log-file": log_file_of(settings.log_directory, instance),
        "--log-max-bytes": settings.log_max_bytes,
        "--log-backups": settings.log_backups,
    }
    return [settings.python_executable, *entry, *(str(x) for kv in options.items() for x in kv)]


def instance_environment(
    spec: InstanceSpec, settings: ProcessSettings, environ: dict[str, str]
) -> dict[str, str]:
    """A minimal environment: locale, PATH, HOME, the dependencies dir, named secrets.

    With the ``environment`` secrets provider the variables named by the function's
    ``secrets`` are passed on, and only those.
    """
    env = {key: environ[key] for key in PASSED_ENVIRONMENT if key in environ}
    env.update({k: v for k, v in environ.items() if k.startswith(PASSED_ENVIRONMENT_PREFIXES)})
    env.setdefault("PATH", os.defpath)
    env.setdefault("LANG", "C.UTF-8")
    if settings.extra_dependencies_dir is not None:
        env["PYTHONPATH"] = str(settings.extra_dependencies_dir)
    if spec.secrets_provider.rsplit(".", 1)[-1] in ENVIRONMENT_SECRETS:
        for name in spec.function.config.secrets:
            if name in environ:
                env[name] = environ[name]
    return env


def describe_exit(code: int) -> str:
    """``exited with code 1`` or ``was killed by SIGKILL``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


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


# -- pid files ---------------------------------------------------------------------


class PidRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Which process runs an instance: enough to recognise it after a worker restart."""

    pid: int
    start_ticks: int
    worker_pid: int
    worker_id: str
    instance: str


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


def end_leftover(path: Path, worker_id: str) -> bool:
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
    terminate_pid(record.pid, record.start_ticks, grace=2.0)
    path.unlink(missing_ok=True)
    return True


def terminate_pid(pid: int, ticks: int, grace: float) -> None:
    """SIGTERM a process that is not our child, SIGKILL it after ``grace`` s; wait until gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if start_ticks(pid) != ticks:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and start_ticks(pid) == ticks:
            time.sleep(0.02)


# -- one supervised instance -----------------------------------------------------------


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one run of an instance process ended (by itself): why, and whether to retry."""

    reason: str
    retry: bool = True


class InstanceProcess:
    """Supervises one instance on a thread of its own (the thread that spawns)."""

    def __init__(self, spec: InstanceSpec, settings: ProcessSettings, *, restarts: int) -> None:
        self.spec = spec
        self.settings = settings
        self.restarts = restarts
        self.phase = "starting"
        self.error = ""
        self.pid: int | None = None
        self.exits: deque[ExceptionInformation] = deque(maxlen=RECENT_EXITS)
        self._status: InstanceStatusData | None = None
        self._metrics = InstanceMetrics()
        self._stop = threading.Event()
        self._spawned = threading.Event()
        self._channel_lock = threading.Lock()
        self._channel: ControlChannel | None = None
        self._thread = threading.Thread(
            target=self._supervise, name=f"fnworker-supervisor-{spec.instance}", daemon=True
        )

    # -- called from the driver (any thread) ---------------------------------------

    def begin(self, timeout: float = 10.0) -> None:
        """Start supervising and wait until the first spawn was attempted (blocking)."""
        self._thread.start()
        self._spawned.wait(timeout)

    def request_stop(self) -> None:
        """Ask the supervisor to stop the process (it does so within a poll interval)."""
        self._stop.set()

    def join(self) -> None:
        """Wait until the process has ended and supervision stopped (blocking)."""
        self._thread.join()

    def status(self) -> InstanceStatusData:
        """The last polled status, adjusted with what only the supervisor knows."""
        cached = self._status if self.phase == "running" else None
        status = msgspec.structs.replace(cached) if cached else InstanceStatusData(error=self.error)
        if self.phase == "starting" and not status.error:
            status.error = "the instance process is starting"
        status.running = self.phase == "running" and cached is not None and cached.running
        status.num_restarts = self.restarts
        status.worker_id = self.spec.worker_id
        status.latest_system_exceptions = [*status.latest_system_exceptions, *self.exits][
            -RECENT_EXITS:
        ]
        return status

    def metrics(self) -> InstanceMetrics:
        """The last polled counters."""
        return self._metrics

    def reset_metrics(self) -> bool:
        """Ask the process to zero its counters (blocking); False if it is not running."""
        try:
            reply = self._request(ResetMetrics(), MetricsReset)
        except ChannelClosed:
            return False
        if reply is None:
            return False
        self._metrics = InstanceMetrics()
        return True

    # -- the supervisor thread -----------------------------------------------------

    def _supervise(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                ran_for, outcome = self._run_once()
                if outcome is None or self._stop.is_set():
                    break
                self.exits.append(
                    ExceptionInformation(exception_string=outcome.reason, timestamp_ms=now_ms())
                )
                if not outcome.retry:
                    self._give_up(outcome)
                    break
                failures = failures_in_a_row(failures, ran_for, self.settings.restart)
                if self._back_off(outcome, failures):
                    break
                self.restarts += 1
        except BaseException as error:
            self.phase = "failed"
            self.error = f"supervising the instance process failed: {error!r}"
            log.exception("instance supervisor failed", instance=self.spec.instance)
        finally:
            self.phase = "stopped" if self._stop.is_set() else self.phase
            self._spawned.set()

    def _give_up(self, outcome: Outcome) -> None:
        self.phase = "failed"
        self.error = f"{outcome.reason} (not restarted: update or restart the function to retry)"
        log.error(
            "instance failed; not restarting it", instance=self.spec.instance, reason=outcome.reason
        )
        self._stop.wait()

    def _back_off(self, outcome: Outcome, failures: int) -> bool:
        """Wait before the next restart; True if a stop came meanwhile."""
        delay = restart_delay(failures, self.settings.restart)
        loop = f"crash loop ({failures} failures in a row): " if failures > 1 else ""
        self.phase = "backing-off"
        self.error = f"{loop}{outcome.reason}; restarting in {delay:.1f} s"
        log.warning(
            "instance process ended; restarting",
            instance=self.spec.instance,
            reason=outcome.reason,
            delay=delay,
            failures=failures,
        )
        return self._stop.wait(delay)

    def _run_once(self) -> tuple[float, Outcome | None]:
        """Spawn, supervise until the process ends or a stop; (seconds it ran, outcome)."""
        self.phase, self.error = "starting", ""
        self._status, self._metrics = None, InstanceMetrics()
        self._remove_unpacked_copies()
        try:
            process, channel = self._spawn()
        except OSError as error:
            return 0.0, Outcome(reason=f"starting the instance process failed: {error}")
        finally:
            self._spawned.set()
        began = time.monotonic()
        try:
            outcome = self._boot_and_watch(process, channel)
        except ChannelClosed:
            outcome = self._ended(process, channel)
        finally:
            self._end(process, channel)
        return time.monotonic() - began, outcome

    def _spawn(self) -> tuple[subprocess.Popen[bytes], ControlChannel]:
        settings, instance = self.settings, self.spec.instance
        log_file = log_file_of(settings.log_directory, instance)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair()
        try:
            with log_file.open("ab") as output:
                process = subprocess.Popen(
                    instance_command(settings, instance, theirs.fileno()),
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=instance_environment(self.spec, settings, dict(os.environ)),
                    cwd=self.spec.package_path.parent,
                    start_new_session=True,
                )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.pid = process.pid
        record = PidRecord(
            pid=process.pid,
            start_ticks=start_ticks(process.pid) or 0,
            worker_pid=os.getpid(),
            worker_id=self.spec.worker_id,
            instance=instance,
        )
        write_pid_file(pid_file_of(settings.state_directory, instance), record)
        log.info("instance process spawned", instance=instance, pid=process.pid)
        channel = ControlChannel.worker_end(ours)
        self._channel = channel
        return process, channel

    def _boot_and_watch(
        self, process: subprocess.Popen[bytes], channel: ControlChannel
    ) -> Outcome | None:
        settings = self.settings
        channel.send(
            Boot(
                spec=self.spec,
                health_timeout_seconds=settings.health_timeout_seconds,
                stop_grace_seconds=instance_stop_grace(settings.stop_grace_seconds),
            )
        )
        first = self._await_start(process, channel)
        if not isinstance(first, Started):
            return first
        self.phase, self.error, missed = "running", "", 0
        self._poll()
        while not self._stop.wait(settings.poll_interval_seconds):
            if process.poll() is not None:
                return self._ended(process, channel)
            missed = 0 if self._poll() else missed + 1
            if missed >= settings.missed_polls_before_kill:
                return Outcome(
                    reason=f"the instance process (pid {process.pid}) stopped answering "
                    f"{missed} status requests in a row and was ended"
                )
        return None

    def _await_start(
        self, process: subprocess.Popen[bytes], channel: ControlChannel
    ) -> Started | Outcome | None:
        deadline = time.monotonic() + self.settings.start_timeout_seconds
        while time.monotonic() < deadline:
            if self._stop.is_set():
                return None
            try:
                with self._channel_lock:
                    message = channel.receive(STOP_NOTICE_SECONDS)
            except ChannelTimeout:
                if process.poll() is not None:
                    return self._ended(process, channel)
                continue
            if isinstance(message, Exiting):
                return Outcome(reason=message.reason, retry=message.retry)
            if isinstance(message, Started):
                return message
        return Outcome(
            reason=f"the instance did not start within {self.settings.start_timeout_seconds:.0f} s"
        )

    def _poll(self) -> bool:
        """Refresh status and metrics; False if the process did not answer in time."""
        status = self._request(GetStatus(), StatusReply)
        metrics = self._request(GetMetrics(), MetricsReply)
        if status is not None:
            self._status = status.status
        if metrics is not None:
            self._metrics = metrics.metrics
        return status is not None and metrics is not None

    def _request(self, request: Any, reply_type: type[Any]) -> Any:
        """Send one request and read its reply; None on timeout, on a stop request, or
        if not running.

        Replies of earlier, timed-out requests are skipped. ChannelClosed propagates
        on the supervisor thread (the process is ending).
        """
        channel = self._channel
        if channel is None or self.phase != "running":
            return None
        deadline = time.monotonic() + self.settings.request_timeout_seconds
        with self._channel_lock:
            channel.send(request)
            while (remaining := deadline - time.monotonic()) > 0 and not self._stop.is_set():
                try:
                    message = channel.receive(min(remaining, STOP_NOTICE_SECONDS))
                except ChannelTimeout:
                    continue
                if isinstance(message, reply_type):
                    return message
                if isinstance(message, Exiting):
                    self.error = message.reason
        return None

    def _ended(self, process: subprocess.Popen[bytes], channel: ControlChannel) -> Outcome:
        """The outcome of a process that ended by itself: its last words, else its exit code."""
        try:
            code = process.wait(timeout=self.settings.stop_grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        said = self._last_words(channel)
        if said is not None:
            return said
        reason = f"the instance process (pid {process.pid}) {describe_exit(code)}"
        line = last_log_line(log_file_of(self.settings.log_directory, self.spec.instance))
        return Outcome(
            reason=f"{reason}; its last log line: {line}" if line and code > 0 else reason
        )

    def _last_words(self, channel: ControlChannel) -> Outcome | None:
        """An ``Exiting`` message still buffered on the channel, if any."""
        with self._channel_lock:
            try:
                while True:
                    message = channel.receive(0.1)
                    if isinstance(message, Exiting):
                        return Outcome(reason=message.reason, retry=message.retry)
            except (ChannelClosed, ChannelTimeout):
                pass
        return Outcome(reason=self.error) if self.error and self.phase == "running" else None

    def _end(self, process: subprocess.Popen[bytes], channel: ControlChannel) -> None:
        """Make sure the process is gone: SIGTERM, the grace period, then SIGKILL."""
        self.phase = "stopping" if self._stop.is_set() else self.phase
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.settings.stop_grace_seconds)
            except subprocess.TimeoutExpired:
                log.warning(
                    "instance process ignored SIGTERM; killing it",
                    instance=self.spec.instance,
                    pid=process.pid,
                )
                process.kill()
                process.wait()
        with self._channel_lock:
            self._channel = None
            channel.close()
        pid_file = pid_file_of(self.settings.state_directory, self.spec.instance)
        record = read_pid_file(pid_file)
        if record is not None and record.pid == process.pid:
            pid_file.unlink(missing_ok=True)

    def _remove_unpacked_copies(self) -> None:
        """Delete what earlier runs unpacked next to the package (the loader's ``.{name}.*``)."""
        package = self.spec.package_path
        for leftover in package.parent.glob(f".{package.name}.*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)


# -- the driver ------------------------------------------------------------------------


class ProcessRuntime(InstanceLifecycle[InstanceProcess]):
    """Runs every function instance in a supervised OS process of its own."""

    name = "process"

    def __init__(self, settings: ProcessSettings) -> None:
        super().__init__()
        self.settings = settings
        self._swept = False
        self._sweep_lock = anyio.Lock()

    async def start(self, spec: InstanceSpec) -> None:
        """Start (or start again) an instance; returns once its process is spawned.

        The first start also ends instance processes a previous run of this worker
        left behind."""
        await self._sweep_once(spec.worker_id)
        await super().start(spec)

    def status(self, instance: InstanceId) -> InstanceStatusData | None:
        """The instance's status, or None if this runtime does not hold it."""
        held = self._held.get(instance)
        return held.status() if held is not None else None

    def metrics(self, instance: InstanceId) -> InstanceMetrics | None:
        """The instance's counters as last polled, or None if not held."""
        held = self._held.get(instance)
        return held.metrics() if held is not None else None

    def pid(self, instance: InstanceId) -> int | None:
        """The pid of the instance's current (or last) process."""
        held = self._held.get(instance)
        return held.pid if held is not None else None

    async def reset_metrics(self, instance: InstanceId) -> bool:
        """Zero the instance's counters; False if it is not running here."""
        held = self._held.get(instance)
        if held is None:
            return False
        return await anyio.to_thread.run_sync(held.reset_metrics)

    async def aclose(self) -> None:
        """Stop every instance. All supervisors are told at once, before any join takes
        one of the event loop's worker threads, so stopping many instances takes about
        one grace period, not one per batch of threads."""
        for held in list(self._held.values()):
            held.request_stop()
        async with anyio.create_task_group() as group:
            for instance in list(self._held):
                group.start_soon(self.stop, instance)

    # -- internals -----------------------------------------------------------------

    async def _sweep_once(self, worker_id: str) -> None:
        """On the first start: end instance processes a previous life of this worker left."""
        async with self._sweep_lock:
            if self._swept:
                return
            self._swept = True
            root = self.settings.state_directory / "processes"
            files = sorted(root.rglob("*.pid")) if root.is_dir() else []
            for path in files:
                await anyio.to_thread.run_sync(end_leftover, path, worker_id)

    async def _start_locked(self, spec: InstanceSpec, *, restarts: int) -> None:
        pid_file = pid_file_of(self.settings.state_directory, spec.instance)
        await anyio.to_thread.run_sync(end_leftover, pid_file, spec.worker_id)
        held = InstanceProcess(spec, self.settings, restarts=restarts)
        self._held[spec.instance] = held
        await anyio.to_thread.run_sync(held.begin)

    async def _stop_locked(self, instance: InstanceId) -> None:
        held = self._held.pop(instance, None)
        if held is None:
            return
        held.request_stop()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(held.join)
        log.info("instance stopped", instance=instance)
