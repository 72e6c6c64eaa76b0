"""The local control channel between the worker and one instance process: the
records it carries and their framing. The equivalent of Pulsar's per-instance
gRPC port (GetFunctionStatus, GetMetrics, ResetMetrics, HealthCheck), over one end
of a ``socket.socketpair()`` the worker hands the process at spawn time. Does I/O
on that socket only.

Why a socketpair and not a port or a socket file: it is private by construction
(no address another local user can connect to, nothing to authenticate, no path
length limit), and when the worker dies, for any reason, the kernel closes its
end, so the instance reads end-of-file at once and exits (no orphans).

Framing: a 4-byte big-endian length, then one msgpack-encoded tagged Struct. The
worker speaks first with ``Boot`` (the InstanceSpec, secrets included, so they
never appear on a command line or in a file), the process answers ``Started`` or
``Exiting``; after that the worker sends one request at a time and reads its
reply. The process may send ``Exiting`` at any moment, with the reason it stops.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Any

import msgspec

from fnworker.scheduler.model.instances import InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import InstanceStatusData

MAX_FRAME_BYTES = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class Boot(msgspec.Struct, frozen=True, kw_only=True, tag="boot"):
    """The first message: what to run, and how long to live without a health check."""

    spec: InstanceSpec
    health_timeout_seconds: float = 15.0
    stop_grace_seconds: float = 5.0


class HealthCheck(msgspec.Struct, frozen=True, kw_only=True, tag="health-check"):
    """Are you alive and is your message loop running? (Any request counts as a check.)"""


class GetStatus(msgspec.Struct, frozen=True, kw_only=True, tag="get-status"):
    """Ask for the instance's status."""


class GetMetrics(msgspec.Struct, frozen=True, kw_only=True, tag="get-metrics"):
    """Ask for the instance's counters."""


class ResetMetrics(msgspec.Struct, frozen=True, kw_only=True, tag="reset-metrics"):
    """Set the instance's counters back to zero."""


class Started(msgspec.Struct, frozen=True, kw_only=True, tag="started"):
    """The instance loaded its code, subscribed and runs its message loop."""

    pid: int


class Exiting(msgspec.Struct, frozen=True, kw_only=True, tag="exiting"):
    """The process is about to exit: ``reason`` is one sentence for the status.

    ``retry`` is False when starting again cannot help (the package does not load
    as configured); the worker then does not restart the instance.
    """

    reason: str
    retry: bool = True


class Healthy(msgspec.Struct, frozen=True, kw_only=True, tag="healthy"):
    """The answer to HealthCheck."""

    running: bool


class StatusReply(msgspec.Struct, frozen=True, kw_only=True, tag="status"):
    """The answer to GetStatus."""

    status: InstanceStatusData


class MetricsReply(msgspec.Struct, frozen=True, kw_only=True, tag="metrics"):
    """The answer to GetMetrics."""

    metrics: InstanceMetrics


class MetricsReset(msgspec.Struct, frozen=True, kw_only=True, tag="metrics-reset"):
    """The answer to ResetMetrics."""


ToInstance = Boot | HealthCheck | GetStatus | GetMetrics | ResetMetrics
FromInstance = Started | Exiting | Healthy | StatusReply | MetricsReply | MetricsReset
Request = HealthCheck | GetStatus | GetMetrics | ResetMetrics


class ChannelClosed(Exception):
    """The other end closed the channel (its process stopped or exited)."""


class ChannelTimeout(Exception):
    """No complete message arrived in time."""


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Path:
        return Path(value)
    raise NotImplementedError(f"cannot decode {kind}")


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_TO_INSTANCE = msgspec.msgpack.Decoder(ToInstance, dec_hook=_dec_hook)
_FROM_INSTANCE = msgspec.msgpack.Decoder(FromInstance)


def encode_frame(message: msgspec.Struct) -> bytes:
    """One message as it travels: length prefix, then msgpack."""
    body = _ENCODER.encode(message)
    return _LENGTH.pack(len(body)) + body


class ControlChannel:
    """One end of the channel over a connected stream socket (blocking, one reader)."""

    def __init__(self, sock: socket.socket, decoder: msgspec.msgpack.Decoder[Any]) -> None:
        self.sock = sock
        self.decoder = decoder
        self._buffer = bytearray()

    @classmethod
    def worker_end(cls, sock: socket.socket) -> ControlChannel:
        """The worker's end: sends ToInstance, receives FromInstance."""
        return cls(sock, _FROM_INSTANCE)

    @classmethod
    def instance_end(cls, sock: socket.socket) -> ControlChannel:
        """The instance's end: sends FromInstance, receives ToInstance."""
        return cls(sock, _TO_INSTANCE)

    def send(self, message: msgspec.Struct) -> None:
        """Send one message; ChannelClosed if the other end is gone."""
        try:
            self.sock.settimeout(None)
            self.sock.sendall(encode_frame(message))
        except OSError as error:
            raise ChannelClosed(f"sending failed: {error}") from None

    def receive(self, timeout: float) -> Any:
        """The next message; ChannelTimeout after ``timeout`` s, ChannelClosed at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._take_frame()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChannelTimeout(f"no message within {timeout:.1f} s")
            self._fill(remaining)

    def close(self) -> None:
        """Close this end (the other end reads end-of-file)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, timeout: float) -> None:
        try:
            self.sock.settimeout(timeout)
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        except OSError as error:
            raise ChannelClosed(f"receiving failed: {error}") from None
        if not chunk:
            raise ChannelClosed("the other end closed the channel")
        self._buffer += chunk

    def _take_frame(self) -> Any:
        if len(self._buffer) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(self._buffer)
        if length > MAX_FRAME_BYTES:
            raise ChannelClosed(f"a frame of {length} bytes is over the {MAX_FRAME_BYTES} limit")
        end = _LENGTH.size + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[_LENGTH.size : end])
        del self._buffer[:end]
        try:
            return self.decoder.decode(body)
        except msgspec.DecodeError as error:
            raise ChannelClosed(f"an undecodable message arrived: {error}") from None
