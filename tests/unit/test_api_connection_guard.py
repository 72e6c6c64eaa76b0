"""The connection guard's decisions: the cap, the body deadline and the answer it
writes itself (the I/O around them is tests/hostile/test_http.py's)."""

from __future__ import annotations

import json

from fnworker.scheduler.api.connection_guard import (
    HttpLimits,
    at_capacity,
    body_deadline,
    http_limits,
    plain_answer,
)
from fnworker.scheduler.settings.worker_config import WorkerConfig


def test_the_cap_admits_up_to_the_limit_and_zero_means_none() -> None:
    limits = HttpLimits(max_connections=3)
    assert [at_capacity(limits, n) for n in (0, 2, 3, 4)] == [False, False, True, True]
    assert not at_capacity(HttpLimits(max_connections=0), 10**6)


def test_a_body_keeping_the_minimum_rate_never_reaches_its_deadline() -> None:
    limits = HttpLimits(body_timeout_s=30.0, body_min_bytes_per_s=1000)
    assert body_deadline(limits, started=100.0, received=0) == 130.0
    for elapsed in (10.0, 100.0, 10_000.0):  # exactly at the minimum rate
        assert body_deadline(limits, 100.0, int(elapsed * 1000)) > 100.0 + elapsed
    # a tenth of the rate: dropped after 30 / 0.9 s
    assert body_deadline(limits, 0.0, 100 * 34) < 34.0


def test_the_guards_own_answer_is_complete_http_with_a_reason() -> None:
    answer = plain_answer(503, "the worker serves at most 2 connections at once")
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert f"Content-Length: {len(body)}".encode() in head and b"Connection: close" in head
    assert json.loads(body) == {"reason": "the worker serves at most 2 connections at once"}


def test_the_limits_come_from_the_config_keys() -> None:
    config = WorkerConfig(max_http_server_connections=5, http_header_read_timeout_seconds=2.5)
    limits = http_limits(config)
    assert (limits.max_connections, limits.header_timeout_s) == (5, 2.5)
    assert limits.keep_alive_timeout_s > limits.header_timeout_s
