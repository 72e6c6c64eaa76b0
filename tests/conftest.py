"""Shared fixtures: a real pulsar-lite broker on a free loopback port, stopped by PID."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker, start_embedded_broker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One broker for the whole session; tests keep apart by using unique topic names."""
    with start_embedded_broker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own, for tests that restart or disturb it."""
    with start_embedded_broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def pulsar_client(broker: EmbeddedBroker) -> Iterator[pulsar.Client]:
    """A sync pulsar-client connected to the session broker, closed after the test."""
    client = pulsar.Client(
        broker.url,
        operation_timeout_seconds=5,
        logger=logging.getLogger("pulsar-test-client"),
    )
    yield client
    client.close()


@contextmanager
def quiet_client(url: str, logger_name: str) -> Iterator[pulsar.Client]:
    """A sync pulsar-client on ``url`` (10 s operation timeout) that logs only warnings
    and up, under ``logger_name``; closed on exit."""
    quiet = logging.getLogger(logger_name)
    quiet.setLevel(logging.WARNING)
    client = pulsar.Client(url, operation_timeout_seconds=10, logger=quiet)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A short name unique to this test, usable in topic and function names."""
    import hashlib

    return "t" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests that need Apache Pulsar unless FNWORKER_REAL_PULSAR_URL names one."""
    import os

    if os.environ.get("FNWORKER_REAL_PULSAR_URL") or os.environ.get("FNWORKER_FORCE_ON_LITE"):
        return  # FNWORKER_FORCE_ON_LITE=1 runs them on pulsar-lite anyway (debugging)
    skip = pytest.mark.skip(
        reason="needs Apache Pulsar (set FNWORKER_REAL_PULSAR_URL); pulsar-lite lacks it"
    )
    for item in items:
        if "requires_real_pulsar" in item.keywords:
            item.add_marker(skip)
