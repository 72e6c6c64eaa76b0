"""``fnworker functions localrun``: run a function's instances in the foreground on
the thread runtime against a broker, with no worker, until Ctrl-C or SIGTERM. The
instances are the worker's own (the same runtime driver and instance host; the spec
is built in ``localrun_plan``). Logs go to the terminal. Does I/O: the broker (through
the runtime), a temporary folder for the package copies, signals."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

import anyio
import structlog

from fnworker.runtimes.driver import RuntimeDriver
from fnworker.runtimes.registry import create_driver
from fnworker.scheduler.cli.localrun_plan import LocalRun, instance_specs, localrun_plan
from fnworker.scheduler.model.instances import InstanceSpec
from fnworker.scheduler.model.records import InstanceId
from fnworker.scheduler.settings.logging_setup import configure_logging
from fnworker.scheduler.settings.worker_config import RuntimeFactoryConfig
from fnworker.scheduler.worker.launch import exit_after, exit_process

log = structlog.get_logger("fnworker.localrun")

STATUS_SECONDS = 1.0
"""How often localrun looks at its instances' status to log a new error."""
STOP_BOUND_SECONDS = 10.0
"""The process ends this long after a stop signal even if an instance hangs."""
STATE_STORAGE_NOTE = (
    "fnworker keeps function state on the broker (one topic per function in the "
    "{namespace} namespace) instead of BookKeeper's table service, so "
    "--state-storage-service-url {url} is not used."
)


def localrun_command(args: argparse.Namespace) -> int:
    """Validate, then run the instances until a stop signal; 0 after a clean stop.
    Errors in the flags, config or package raise CliError before anything starts."""
    run = localrun_plan(args)
    configure_logging()
    if args.state_storage_service_url:
        print(
            STATE_STORAGE_NOTE.format(
                namespace=run.state.namespace, url=args.state_storage_service_url
            ),
            file=sys.stderr,
            flush=True,
        )
    with tempfile.TemporaryDirectory(prefix="fnworker-localrun-") as folder:
        specs = instance_specs(run, Path(folder))
        try:
            anyio.run(run_until_signalled, run, specs)
        except KeyboardInterrupt:  # a Ctrl-C before the signal receiver was installed
            pass
    exit_process(0)


async def run_until_signalled(run: LocalRun, specs: list[InstanceSpec]) -> None:
    """Start every instance on the thread runtime, stop them all on SIGINT or SIGTERM
    (a signal during the starts is handled at once: the starts run in a task)."""
    runtime = create_driver("thread", RuntimeFactoryConfig(), run.client, worker_id=run.worker_id)
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as group:
            await group.start(runtime.run)
            try:
                log.info(
                    "localrun starting",
                    function=run.record.fqfn,
                    instances=len(specs),
                    broker=run.client.service_url,
                )
                group.start_soon(start_all, runtime, specs)
                group.start_soon(report_errors, runtime, [spec.instance for spec in specs])
                async for received in signals:
                    log.info("signal received, stopping", signal=received.name)
                    exit_after(STOP_BOUND_SECONDS)
                    break
            finally:
                group.cancel_scope.cancel()  # the starts and the reports end first
                with anyio.CancelScope(shield=True):
                    await runtime.aclose()
    log.info("localrun stopped", function=run.record.fqfn)


async def start_all(runtime: RuntimeDriver, specs: list[InstanceSpec]) -> None:
    """Start the instances one after the other, as a worker's reconciler does."""
    for spec in specs:
        await runtime.start(spec)


async def report_errors(runtime: RuntimeDriver, instances: list[InstanceId]) -> None:
    """Log an instance's status error each time it changes (starting failed, stalled,
    an exception in the function), since localrun has no REST API to ask."""
    shown: dict[InstanceId, str] = {}
    while True:
        for instance in instances:
            status = runtime.status(instance)
            error = status.error if status is not None else ""
            if error and error != shown.get(instance):
                log.warning("instance error", instance=instance, error=error)
            shown[instance] = error
        await anyio.sleep(STATUS_SECONDS)
