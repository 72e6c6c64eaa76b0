"""Asks the broker who it is: one raw TCP connection to the service URL, a CONNECT,
the CONNECTED's ``server_version``, closed again; all within ``seconds``. Blocking
socket I/O (run it off the event loop). The frames and the decision are pure, in
broker_kind.py.

A TLS service URL (``pulsar+ssl://``) is not asked: pulsar-lite has no TLS listener,
so such a broker is Apache Pulsar (or a proxy in front of it) and needs no
pulsar-lite workaround. A broker that refuses the connection is asked again until
the deadline (it may still be starting; a worker coordinating in memory, for tests,
does not wait); no usable answer in time is ``UNKNOWN``.
"""

from __future__ import annotations

import socket
import time

from fnworker.runtimes.broker_kind import (
    BrokerFinding,
    BrokerKind,
    connect_frame,
    frame_size,
    kind_of,
    probe_address,
    server_version_of,
)

PROBE_SECONDS = 5.0
RETRY_SECONDS = 0.2


def probe_broker(
    service_url: str, seconds: float = PROBE_SECONDS, retry_refused: bool = True
) -> BrokerFinding:
    """What the broker at ``service_url`` says it is, within ``seconds``; a refused
    connection is retried until then only with ``retry_refused``."""
    address = probe_address(service_url)
    if address is None:
        return BrokerFinding(
            kind=BrokerKind.UNKNOWN, detail="not asked: not a plain pulsar:// service URL"
        )
    deadline = time.monotonic() + seconds
    while True:
        try:
            version = ask_server_version(address, deadline)
        except ConnectionRefusedError as error:
            if not retry_refused or time.monotonic() + RETRY_SECONDS >= deadline:
                return _unknown(error, seconds)
            time.sleep(RETRY_SECONDS)
            continue
        except (OSError, ValueError) as error:
            return _unknown(error, seconds)
        return BrokerFinding(kind=kind_of(version), server_version=version)


def ask_server_version(address: tuple[str, int], deadline: float) -> str:
    """Send CONNECT to ``address`` and read the CONNECTED's server version before
    ``deadline`` (time.monotonic); OSError or ValueError otherwise."""
    with socket.create_connection(address, timeout=_left(deadline)) as connection:
        connection.settimeout(_left(deadline))
        connection.sendall(connect_frame())
        header = _read_exactly(connection, 4, deadline)
        body = _read_exactly(connection, frame_size(header), deadline)
    return server_version_of(body)


def _read_exactly(connection: socket.socket, count: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < count:
        connection.settimeout(_left(deadline))
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise ValueError("the broker closed the connection without answering CONNECTED")
        data += chunk
    return bytes(data)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no answer in time")
    return left


def _unknown(error: Exception, seconds: float) -> BrokerFinding:
    reason = str(error) or type(error).__name__
    if isinstance(error, TimeoutError):
        reason = f"no CONNECTED answer within {seconds:g} s"
    return BrokerFinding(kind=BrokerKind.UNKNOWN, detail=reason)
