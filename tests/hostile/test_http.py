"""Hostile HTTP clients against a real ``fnworker standalone`` (memory capped with
RLIMIT_AS): slow headers and trickling bodies are dropped within their timeouts,
idle keep-alive connections are closed, the connection cap refuses the excess at
once while the worker goes on serving, a 50 MB trigger value is a 413, a client
that disconnects mid-request is no server error, and after all of it the function
still processes messages. The worker runs with small timeouts (``LIMITS``) so the
module stays within about 20 seconds."""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
import uuid
from collections.abc import Iterator

import pulsar
import pytest

from tests.e2e.conftest import StandaloneWorker
from tests.e2e.helpers import (
    BASE,
    call,
    trigger,
    trigger_until_answered,
    wait_for,
)
from tests.e2e.pipe import Pipe
from tests.hostile.conftest import running_capped_worker

HEADER_TIMEOUT_S = 1.5
BODY_TIMEOUT_S = 2.0
BODY_MIN_RATE = 1000
KEEP_ALIVE_S = 2.5  # above the header timeout: aiohttp's own idle timer would close a
# half-sent request silently before the 408
MAX_CONNECTIONS = 48
LIMITS = {
    "httpHeaderReadTimeoutSeconds": HEADER_TIMEOUT_S,
    "httpBodyReadTimeoutSeconds": BODY_TIMEOUT_S,
    "httpBodyMinBytesPerSecond": BODY_MIN_RATE,
    "httpKeepAliveTimeoutSeconds": KEEP_ALIVE_S,
    "maxHttpServerConnections": MAX_CONNECTIONS,
}
SLACK_S = 3.0
"""How much later than its deadline a drop may come on a loaded machine."""
FUNCTION = "hx-exclaim"
SERVER_ERRORS = ("request failed", "Error handling request", "Unhandled exception", "Traceback")


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneWorker]:
    folder = tmp_path_factory.mktemp("hostile-http")
    with running_capped_worker(folder, LIMITS, FUNCTION) as started:
        yield started


def port_of(worker: StandaloneWorker) -> int:
    return int(worker.admin_url.rsplit(":", 1)[1])


def connect(worker: StandaloneWorker) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port_of(worker)), timeout=10)


def trickle_until_dropped(
    sockets: list[socket.socket], chunk: bytes, every_s: float, give_up_s: float
) -> dict[socket.socket, tuple[float, bytes]]:
    """Send ``chunk`` on every socket every ``every_s`` seconds until the worker answers
    or closes it: how many seconds each lasted and the first bytes it answered (those
    never dropped are missing)."""
    start = time.monotonic()
    dropped: dict[socket.socket, tuple[float, bytes]] = {}
    while len(dropped) < len(sockets) and time.monotonic() - start < give_up_s:
        for sock in [s for s in sockets if s not in dropped]:
            try:
                sock.send(chunk)
            except OSError:
                dropped[sock] = (time.monotonic() - start, b"")
        alive = [s for s in sockets if s not in dropped]
        readable, _, _ = select.select(alive, [], [], every_s)
        for sock in readable:
            try:
                answer = sock.recv(65536)
            except OSError:
                answer = b""
            dropped[sock] = (time.monotonic() - start, answer)
    return dropped


def answer_of(sock: socket.socket) -> bytes:
    """What the worker sent before closing (empty after a reset)."""
    sock.settimeout(5)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    return data


def multipart_head(boundary: str, name: str, file_name: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if file_name:
        disposition += f'; filename="{file_name}"'
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()


def trigger_request(boundary: str, length: int) -> bytes:
    return (
        f"POST {BASE}/{FUNCTION}/trigger HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_slow_headers_are_dropped_within_the_timeout(worker: StandaloneWorker) -> None:
    sockets = [connect(worker) for _ in range(40)]
    quiet = connect(worker)
    try:
        for sock in [*sockets, quiet]:
            sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")
        dropped = trickle_until_dropped(sockets, b"X-Slow: 1\r\n", 0.2, HEADER_TIMEOUT_S + SLACK_S)
        assert len(dropped) == len(sockets), "slow-header connections were never dropped"
        lasted = [seconds for seconds, _ in dropped.values()]
        assert HEADER_TIMEOUT_S - 0.5 <= min(lasted) <= max(lasted) <= HEADER_TIMEOUT_S + SLACK_S
        assert all(a.startswith(b"HTTP/1.1 408") for _, a in dropped.values() if a)
        assert answer_of(quiet).startswith(b"HTTP/1.1 408")  # a half-sent request's answer
    finally:
        for sock in [*sockets, quiet]:
            sock.close()


def test_a_trickling_body_is_dropped(worker: StandaloneWorker) -> None:
    boundary = uuid.uuid4().hex
    sock = connect(worker)
    try:
        sock.sendall(trigger_request(boundary, 1_000_000) + multipart_head(boundary, "data"))
        # 100 bytes/s, a tenth of the minimum rate: dropped after about
        # BODY_TIMEOUT_S / (1 - 0.1) seconds.
        dropped = trickle_until_dropped([sock], b"x" * 10, 0.1, BODY_TIMEOUT_S * 2 + SLACK_S)
        assert sock in dropped, "a body trickling at 100 bytes/s was never dropped"
        assert BODY_TIMEOUT_S - 0.5 <= dropped[sock][0] <= BODY_TIMEOUT_S / 0.9 + SLACK_S
    finally:
        sock.close()


def test_an_idle_keep_alive_connection_is_closed(worker: StandaloneWorker) -> None:
    sock = connect(worker)
    try:
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        answer = answer_of_until_closed(sock, KEEP_ALIVE_S + SLACK_S)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert time.monotonic() - start <= KEEP_ALIVE_S + SLACK_S
    finally:
        sock.close()


def answer_of_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    """Everything the worker sends until it closes the connection; fails past timeout_s."""
    sock.settimeout(timeout_s)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_the_connection_cap_refuses_the_excess_and_serves_the_rest(
    worker: StandaloneWorker,
) -> None:
    held = [connect(worker) for _ in range(MAX_CONNECTIONS)]
    try:
        extra = connect(worker)
        start = time.monotonic()
        refused = answer_of(extra)
        extra.close()
        assert refused.startswith(b"HTTP/1.1 503"), refused
        assert b"at most 48 connections" in refused
        assert time.monotonic() - start < 1.0
        held[0].sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer_of(held[0]).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()
    assert wait_for(lambda: status_of(worker, "GET", "/version") == 200, timeout=10)


def status_of(worker: StandaloneWorker, method: str, path: str) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port_of(worker), timeout=10)
    try:
        connection.request(method, path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def test_a_50_mb_trigger_value_is_413_naming_the_part(worker: StandaloneWorker) -> None:
    boundary = uuid.uuid4().hex
    value = b"v" * 50_000_000
    body = (
        multipart_head(boundary, "dataStream", "value.bin")
        + value
        + f"\r\n--{boundary}--\r\n".encode()
    )
    connection = http.client.HTTPConnection("127.0.0.1", port_of(worker), timeout=60)
    try:
        connection.request(
            "POST",
            f"{BASE}/{FUNCTION}/trigger",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        reply = connection.getresponse()
        reason = json.loads(reply.read())["reason"]
    finally:
        connection.close()
    assert reply.status == 413, reason
    assert "'dataStream'" in reason and "50000000 bytes" in reason and "5242880" in reason


def disconnect_mid_body(worker: StandaloneWorker, reset: bool) -> None:
    """Send the head and part of a trigger body, then go away (FIN, or RST with ``reset``)."""
    boundary = uuid.uuid4().hex
    sock = connect(worker)
    sock.sendall(
        trigger_request(boundary, 200_000)
        + multipart_head(boundary, "dataStream", "v.bin")
        + b"v" * 50_000
    )
    time.sleep(0.2)  # let the worker start reading the body before the client leaves
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def test_a_client_disconnecting_mid_body_is_not_a_server_error(
    worker: StandaloneWorker,
) -> None:
    before = worker.log_path.read_text(errors="replace").count("client disconnected")
    disconnect_mid_body(worker, reset=False)
    disconnect_mid_body(worker, reset=True)
    wait_for(
        lambda: (
            worker.log_path.read_text(errors="replace").count("client disconnected") >= before + 2
        ),
        timeout=10,
    )
    log = worker.log_path.read_text(errors="replace")
    assert not [line for line in log.splitlines() if any(e in line for e in SERVER_ERRORS)]


def test_a_trigger_of_a_stopped_function_is_409_at_once(worker: StandaloneWorker) -> None:
    assert call(worker.admin_url, "POST", f"{BASE}/{FUNCTION}/stop").status == 200
    start = time.monotonic()
    reply = trigger(worker.admin_url, FUNCTION, "nobody listens")
    assert reply.status == 409, reply.body
    assert "stopped" in reply.reason
    assert time.monotonic() - start < 5.0  # not the trigger's output timeout
    assert call(worker.admin_url, "POST", f"{BASE}/{FUNCTION}/start").status == 200


def test_after_all_of_it_the_function_still_processes(worker: StandaloneWorker) -> None:
    assert trigger_until_answered(worker.admin_url, FUNCTION, "still").body == b"still!"
    client = pulsar.Client(worker.broker_url, operation_timeout_seconds=10)
    try:
        pipe = Pipe(client, FUNCTION, shared=True)
        values = [f"m{i}" for i in range(20)]
        pipe.send(values)
        assert pipe.receive_all({f"{v}!" for v in values}, timeout_s=30) >= {
            f"{v}!" for v in values
        }
    finally:
        client.close()
    assert worker.process.poll() is None
    log = worker.log_path.read_text(errors="replace")
    assert not [line for line in log.splitlines() if any(e in line for e in SERVER_ERRORS)]
