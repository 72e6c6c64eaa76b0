"""The standalone demo: deploys Pulsar's exclamation example on the running
worker, sends a bounded series of messages to its input and prints each result
as it arrives, so a new user sees the worker process messages. Does I/O.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import msgspec
import pulsar

from fnworker.runtimes.broker_client import make_client
from fnworker.scheduler.model.admin_records import PackageSource, UploadedPackage
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.instances import ClientSettings
from fnworker.scheduler.model.records import FunctionConfig
from fnworker.scheduler.settings.worker_config import WorkerConfig
from fnworker.scheduler.worker.worker_service import RunningWorker, client_settings_of

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "exclamation_function.py"
EXAMPLE_SOURCE = (
    "from pulsar import Function\n\n\nclass ExclamationFunction(Function):\n"
    "  def __init__(self):\n    pass\n\n  def process(self, input, context):\n"
    "    return input + '!'\n"
)
INPUT = "persistent://public/default/exclamation-input"
OUTPUT = "persistent://public/default/exclamation-output"


def say(line: str) -> None:
    """Print one demo line to stdout, apart from the worker's logs."""
    print(f"[demo] {line}", flush=True)


def example_package(folder: Path) -> Path:
    """The exclamation example as a file to upload (the repo's copy when present)."""
    target = folder / "exclamation_function.py"
    target.write_text(EXAMPLE.read_text() if EXAMPLE.exists() else EXAMPLE_SOURCE)
    return target


async def deploy_example(worker: RunningWorker) -> None:
    """Register public/default/exclamation unless it is already there."""
    config = FunctionConfig(
        class_name="exclamation_function.ExclamationFunction",
        inputs=[INPUT],
        output=OUTPUT,
    )
    with tempfile.TemporaryDirectory() as folder:
        package = UploadedPackage(
            file_name="exclamation_function.py", path=example_package(Path(folder))
        )
        try:
            await worker.admin.register(
                "public", "default", "exclamation", config, PackageSource(upload=package)
            )
        except ApiError as error:
            if error.status != 409:
                raise
    with anyio.move_on_after(30):
        while (
            await worker.admin.function_status("public", "default", "exclamation")
        ).num_running < 1:
            await anyio.sleep(0.1)
    say(f"deployed public/default/exclamation on {worker.admin_url}: {INPUT} -> {OUTPUT}")


def send_and_print(settings: ClientSettings, count: int) -> None:
    """Send ``count`` messages a second apart and print each result (blocking)."""
    settings = msgspec.structs.replace(settings, operation_timeout_seconds=10)
    client = make_client(settings)
    try:
        consumer = client.subscribe(
            OUTPUT,
            "fnworker-demo",
            consumer_type=pulsar.ConsumerType.Shared,  # pulsar-lite duplicates to Exclusive
            initial_position=pulsar.InitialPosition.Latest,
        )
        producer = client.create_producer(INPUT)
        for number in range(1, count + 1):
            text = f"hello-{number}"
            producer.send(text.encode())
            try:
                reply = consumer.receive(timeout_millis=10_000)
            except pulsar.Timeout:
                say(f"sent {text!r}, no result within 10 s")
                continue
            consumer.acknowledge(reply)
            say(f"sent {text!r} -> function returned {reply.data().decode()!r}")
            time.sleep(1.0)
        say(f"done: {count} messages processed; the worker keeps running (Ctrl-C to stop)")
    finally:
        client.close()


def demo_task(count: int) -> Callable[[RunningWorker, WorkerConfig], Awaitable[None]]:
    """The task launch.py starts once the worker is ready."""

    async def run(worker: RunningWorker, config: WorkerConfig) -> None:
        await deploy_example(worker)
        say(f"try it yourself: fnworker functions list --admin-url {worker.admin_url}")
        await anyio.to_thread.run_sync(send_and_print, client_settings_of(config), count)

    return run
