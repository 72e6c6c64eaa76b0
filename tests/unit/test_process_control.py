"""The control channel between the worker and an instance process: framing over a
real socketpair, the Boot record with its InstanceSpec, partial frames, end of
file, timeouts and oversized frames."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fnworker.runtimes.process.control import (
    MAX_FRAME_BYTES,
    Boot,
    ChannelClosed,
    ChannelTimeout,
    ControlChannel,
    Exiting,
    GetStatus,
    MetricsReply,
    encode_frame,
)
from fnworker.scheduler.model.instances import ClientSettings, InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord, instance_id_of


@pytest.fixture
def channels() -> Iterator[tuple[ControlChannel, ControlChannel]]:
    worker, instance = socket.socketpair()
    pair = ControlChannel.worker_end(worker), ControlChannel.instance_end(instance)
    yield pair
    for channel in pair:
        channel.close()


def spec() -> InstanceSpec:
    fqfn = Fqfn("public/default/f")
    config = FunctionConfig(name="f", class_name="m.F", inputs=["in"], secrets={"token": "s3cret"})
    return InstanceSpec(
        instance=instance_id_of(fqfn, 1),
        index=1,
        function=FunctionRecord(fqfn=fqfn, version=3, config=config),
        package_path=Path("/tmp/x/m.py"),
        worker_id="w1",
        client=ClientSettings(service_url="pulsar://127.0.0.1:6650", auth_params="token:abc"),
    )


def test_boot_carries_the_whole_spec(channels: tuple[ControlChannel, ControlChannel]) -> None:
    worker, instance = channels
    worker.send(Boot(spec=spec(), health_timeout_seconds=7.0))
    received = instance.receive(1.0)
    assert received == Boot(spec=spec(), health_timeout_seconds=7.0)
    assert isinstance(received.spec.package_path, Path)


def test_requests_and_replies_round_trip(channels: tuple[ControlChannel, ControlChannel]) -> None:
    worker, instance = channels
    worker.send(GetStatus())
    assert instance.receive(1.0) == GetStatus()
    instance.send(MetricsReply(metrics=InstanceMetrics(received_total=5)))
    instance.send(Exiting(reason="bye", retry=False))
    assert worker.receive(1.0) == MetricsReply(metrics=InstanceMetrics(received_total=5))
    assert worker.receive(1.0) == Exiting(reason="bye", retry=False)


def test_a_frame_split_across_writes_is_reassembled() -> None:
    worker, instance = socket.socketpair()
    channel = ControlChannel.instance_end(instance)
    frame = encode_frame(GetStatus())
    worker.sendall(frame[:3])
    with pytest.raises(ChannelTimeout):
        channel.receive(0.05)
    worker.sendall(frame[3:])
    assert channel.receive(1.0) == GetStatus()
    worker.close()
    channel.close()


def test_end_of_file_and_timeouts(channels: tuple[ControlChannel, ControlChannel]) -> None:
    worker, instance = channels
    with pytest.raises(ChannelTimeout):
        instance.receive(0.05)
    worker.close()
    with pytest.raises(ChannelClosed, match="closed"):
        instance.receive(1.0)


def test_an_oversized_frame_closes_the_channel() -> None:
    worker, instance = socket.socketpair()
    channel = ControlChannel.instance_end(instance)
    worker.sendall((MAX_FRAME_BYTES + 1).to_bytes(4, "big"))
    with pytest.raises(ChannelClosed, match="limit"):
        channel.receive(1.0)
    worker.close()
    channel.close()


def test_garbage_closes_the_channel() -> None:
    worker, instance = socket.socketpair()
    channel = ControlChannel.instance_end(instance)
    worker.sendall(b"\x00\x00\x00\x02\xc1\xc1")
    with pytest.raises(ChannelClosed, match="undecodable"):
        channel.receive(1.0)
    worker.close()
    channel.close()
