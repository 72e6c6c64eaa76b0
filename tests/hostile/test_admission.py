"""Admission limits against a real, memory-capped ``fnworker standalone``: the
issue's requests (parallelism 1e9, cpu 1e300, ram 2^70, 10,000 input topics, an
update over a limit) each answer 400 with one sentence naming the field, the value
and the limit; nothing is stored; the worker keeps running and an ordinary function
beside them still processes messages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import StandaloneWorker
from tests.e2e.helpers import (
    BASE,
    EXAMPLE,
    call,
    example_config,
    function_form,
    register,
    running_count,
    wait_for,
)
from tests.hostile.conftest import ORDINARY, assert_nothing_stored, assert_unharmed

pytestmark = [pytest.mark.timeout(60)]


def create(worker: StandaloneWorker, name: str, **extra: Any) -> tuple[int, str]:
    """POST a function made of the exclamation example with ``extra`` config fields."""
    reply = call(
        worker.admin_url,
        "POST",
        f"{BASE}/{name}",
        function_form(example_config(name, **extra), EXAMPLE),
    )
    return reply.status, reply.reason if reply.status != 200 else ""


@pytest.mark.parametrize(
    ("name", "extra", "reason"),
    [
        (
            "parallel-billion",
            {"parallelism": 1_000_000_000},
            "parallelism 1000000000 is above maxFunctionParallelism 1000; expected 1 to 1000",
        ),
        (
            "cpu-1e300",
            {"resources": {"cpu": 1e300}},
            (
                "resources.cpu 1e+300 is above functionInstanceMaxResources.cpu 64.0; "
                "expected more than 0 and up to 64.0 cores"
            ),
        ),
        (
            "ram-2-70",
            {"resources": {"ram": 2**70}},
            (
                f"resources.ram {2**70} is above functionInstanceMaxResources.ram 274877906944; "
                "expected more than 0 and up to 274877906944 bytes"
            ),
        ),
    ],
)
def test_a_number_over_its_limit_is_refused(
    capped_worker: StandaloneWorker, name: str, extra: dict[str, Any], reason: str
) -> None:
    assert create(capped_worker, name, **extra) == (400, reason)
    assert_nothing_stored(capped_worker, name)
    assert_unharmed(capped_worker)


def test_ten_thousand_input_topics_are_refused(capped_worker: StandaloneWorker) -> None:
    topics = [f"persistent://public/default/many-{i}" for i in range(10_000)]
    status, reason = create(capped_worker, "many-inputs", inputs=topics)
    assert status == 400
    assert reason == (
        "inputs names 10000 input topics (inputs, topicsPattern, customSerdeInputs, "
        "customSchemaInputs and inputSpecs together), above maxInputTopicsPerFunction 100; "
        "expected at most 100"
    )
    assert_nothing_stored(capped_worker, "many-inputs")
    assert_unharmed(capped_worker)


def test_an_update_over_a_limit_is_refused_and_the_function_is_unchanged(
    capped_worker: StandaloneWorker,
) -> None:
    base = capped_worker.admin_url
    before = call(base, "GET", f"{BASE}/{ORDINARY}").json()
    form = function_form({"parallelism": 5000}, package=None)
    reply = call(base, "PUT", f"{BASE}/{ORDINARY}", form)
    assert (reply.status, reply.reason) == (
        400,
        "parallelism 5000 is above maxFunctionParallelism 1000; expected 1 to 1000",
    )
    assert call(base, "GET", f"{BASE}/{ORDINARY}").json() == before
    assert_unharmed(capped_worker)


def test_within_the_limits_is_accepted(capped_worker: StandaloneWorker) -> None:
    reply = register(capped_worker.admin_url, "within", parallelism=2, resources={"cpu": 0.5})
    assert reply.status == 200, reply.body
    wait_for(lambda: running_count(capped_worker.admin_url, "within") == 2)
    assert call(capped_worker.admin_url, "DELETE", f"{BASE}/within").status == 200
