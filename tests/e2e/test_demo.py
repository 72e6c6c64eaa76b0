"""The README's first command: `fnworker standalone --demo` deploys Pulsar's
exclamation example and visibly processes messages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.conftest import launch, stop, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_the_demo_prints_every_message_coming_back_exclaimed(tmp_path: Path) -> None:
    worker = launch(tmp_path / "state", "--demo", "--demo-messages", "3")
    try:
        wait_ready(worker)
        expected = [f"sent 'hello-{n}' -> function returned 'hello-{n}!'" for n in (1, 2, 3)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "[demo] done" not in worker.log_path.read_text():
            time.sleep(0.2)
        output = worker.log_path.read_text()
        assert all(line in output for line in expected), output[-2000:]
        assert "[demo] done: 3 messages processed" in output
    finally:
        stop(worker)
