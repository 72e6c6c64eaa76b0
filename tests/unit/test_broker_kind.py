"""Telling pulsar-lite from Apache Pulsar at start: the pure decision from a
CONNECTED's server_version, the frames, and the probe against tiny fake brokers on
loopback (one answering CONNECTED with a given version, one that never answers)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import pytest
import structlog

from fnworker.runtimes.broker_kind import (
    CLIENT_VERSION,
    CONNECT,
    DEFAULT_PULSAR_LITE_SLOTS,
    BrokerKind,
    connect_frame,
    connected_frame,
    consumer_id_slots,
    frame_size,
    kind_of,
    probe_address,
    protobuf_fields,
    server_version_of,
)
from fnworker.runtimes.broker_probe import probe_broker
from fnworker.scheduler.model.instances import ClientSettings
from fnworker.scheduler.settings.worker_config import WorkerConfig
from fnworker.scheduler.worker.broker_detection import with_broker_workarounds

PULSAR_LITE = "Pulsar-Lite-0.1.0"
APACHE_PULSAR = "Pulsar Server3.0.2"


def test_pulsar_lite_names_itself_and_apache_pulsar_does_not() -> None:
    assert kind_of(PULSAR_LITE) is BrokerKind.PULSAR_LITE
    assert kind_of(APACHE_PULSAR) is BrokerKind.OTHER
    assert kind_of("") is BrokerKind.OTHER


def test_the_workaround_is_on_only_for_pulsar_lite_unless_the_key_says_otherwise() -> None:
    assert consumer_id_slots(BrokerKind.PULSAR_LITE, None) == DEFAULT_PULSAR_LITE_SLOTS
    assert consumer_id_slots(BrokerKind.OTHER, None) == 0
    assert consumer_id_slots(BrokerKind.UNKNOWN, None) == 0
    assert consumer_id_slots(BrokerKind.OTHER, 8) == 8
    assert consumer_id_slots(BrokerKind.PULSAR_LITE, 0) == 0


def test_only_plain_pulsar_urls_are_asked() -> None:
    assert probe_address("pulsar://127.0.0.1:6650") == ("127.0.0.1", 6650)
    assert probe_address("pulsar://broker-1:6651,broker-2:6651/") == ("broker-1", 6651)
    assert probe_address("pulsar://broker") == ("broker", 6650)
    assert probe_address("pulsar://[::1]:6650") == ("::1", 6650)
    assert probe_address("pulsar+ssl://broker:6651") is None
    assert probe_address("http://broker:8080") is None


def test_a_connect_frame_is_a_pulsar_connect_command() -> None:
    frame = connect_frame()
    body = frame[4:]
    assert frame_size(frame[:4]) == len(body)
    (command_size,) = struct.unpack(">I", body[:4])
    command = dict(protobuf_fields(body[4 : 4 + command_size]))
    assert command[1] == CONNECT
    connect = command[2]
    assert isinstance(connect, bytes)
    assert dict(protobuf_fields(connect))[1] == CLIENT_VERSION.encode()


def test_the_server_version_is_read_from_a_connected_frame() -> None:
    assert server_version_of(connected_frame(PULSAR_LITE)[4:]) == PULSAR_LITE
    with pytest.raises(ValueError, match="not CONNECTED"):
        server_version_of(connect_frame()[4:])
    with pytest.raises(ValueError, match="not a Pulsar command"):
        frame_size(struct.pack(">I", 10**9))


@contextmanager
def fake_broker(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback listener handing each connection to ``answer``; its service URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(connection)
            answer(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"pulsar://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in held:
            connection.close()
        listener.close()


def answers(version: str) -> Callable[[socket.socket], None]:
    """A fake broker that reads one CONNECT and answers CONNECTED with ``version``."""

    def answer(connection: socket.socket) -> None:
        connection.settimeout(5)
        size = frame_size(connection.recv(4, socket.MSG_WAITALL))
        body = connection.recv(size, socket.MSG_WAITALL)
        (command_size,) = struct.unpack(">I", body[:4])
        if dict(protobuf_fields(body[4 : 4 + command_size])).get(1) == CONNECT:
            connection.sendall(connected_frame(version))

    return answer


def never_answers(connection: socket.socket) -> None:
    """A fake broker that accepts and then says nothing."""


@pytest.mark.parametrize(
    ("version", "kind"), [(PULSAR_LITE, BrokerKind.PULSAR_LITE), (APACHE_PULSAR, BrokerKind.OTHER)]
)
def test_the_probe_reads_the_kind_from_the_brokers_answer(version: str, kind: BrokerKind) -> None:
    with fake_broker(answers(version)) as url:
        finding = probe_broker(url, seconds=5)
    assert (finding.kind, finding.server_version) == (kind, version)


def test_a_broker_that_never_answers_is_unknown_within_the_bound() -> None:
    with fake_broker(never_answers) as url:
        began = time.monotonic()
        finding = probe_broker(url, seconds=0.5)
        took = time.monotonic() - began
    assert finding.kind is BrokerKind.UNKNOWN
    assert "no CONNECTED answer within 0.5 s" in finding.detail
    assert took < 2.0


def test_a_refused_connection_is_unknown_at_once_without_retrying() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    began = time.monotonic()
    finding = probe_broker(f"pulsar://127.0.0.1:{port}", seconds=5, retry_refused=False)
    assert finding.kind is BrokerKind.UNKNOWN
    assert time.monotonic() - began < 1.0


def test_a_tls_url_is_not_asked_and_gets_no_workaround() -> None:
    finding = probe_broker("pulsar+ssl://127.0.0.1:1", seconds=5)
    assert finding.kind is BrokerKind.UNKNOWN


def detect(url: str, seconds: float, **config: object) -> tuple[int, list[dict[str, object]]]:
    """The consumer-id slots a worker with ``config`` decides on, and its log lines."""
    worker_config = WorkerConfig(pulsar_service_url=url, **config)  # type: ignore[arg-type]
    with structlog.testing.capture_logs() as logs:
        client = anyio.run(
            with_broker_workarounds, worker_config, ClientSettings(service_url=url), seconds
        )
    return client.consumer_id_slots, [e for e in logs if e["event"] == "start-up: broker kind"]


def test_a_worker_on_pulsar_lite_turns_the_workaround_on_and_says_so() -> None:
    with fake_broker(answers(PULSAR_LITE)) as url:
        slots, lines = detect(url, 5)
    assert slots == DEFAULT_PULSAR_LITE_SLOTS
    assert [(e["broker"], e["consumer_id_workaround"]) for e in lines] == [
        ("pulsar-lite", f"on, {DEFAULT_PULSAR_LITE_SLOTS} slots")
    ]


def test_a_worker_on_apache_pulsar_leaves_it_off() -> None:
    with fake_broker(answers(APACHE_PULSAR)) as url:
        slots, lines = detect(url, 5)
    assert slots == 0
    assert [(e["broker"], e["consumer_id_workaround"]) for e in lines] == [("other", "off")]


def test_a_worker_whose_broker_never_answers_falls_back_to_no_workaround() -> None:
    with fake_broker(never_answers) as url:
        began = time.monotonic()
        slots, lines = detect(url, 0.5)
        assert time.monotonic() - began < 2.0
    assert slots == 0
    assert [(e["broker"], e["consumer_id_workaround"]) for e in lines] == [("unknown", "off")]
    assert "no CONNECTED answer" in str(lines[0]["detail"])


def test_the_key_overrides_what_the_broker_says() -> None:
    with fake_broker(answers(PULSAR_LITE)) as url:
        assert detect(url, 5, pulsar_lite_consumer_id_slots=0)[0] == 0
    with fake_broker(answers(APACHE_PULSAR)) as url:
        assert detect(url, 5, pulsar_lite_consumer_id_slots=4)[0] == 4
