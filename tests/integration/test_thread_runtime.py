"""The thread runtime against the real (pulsar-lite) broker: Pulsar's own example,
context features, packages, serdes, guarantees, dead letters, update and stop."""

from __future__ import annotations

import base64
import logging
import pickle
import threading
import time
from pathlib import Path

import pulsar
import pytest
from anyio.from_thread import BlockingPortal

from fnworker.runtimes.thread import ThreadRuntime
from fnworker.scheduler.model.records import ConsumerConfig
from tests.integration.conftest import (
    EXAMPLES,
    FUNCTIONS,
    SpecMaker,
    produce,
    receive,
    subscribe,
    wait_until,
    zip_package,
)

pytestmark = [pytest.mark.timeout(60)]


def function_subscription(client: pulsar.Client, name: str) -> pulsar.Consumer:
    """A consumer on the stopped function's own input subscription (Pulsar's default
    name), to see what the function left unacknowledged."""
    return subscribe(client, f"{name}-in", subscription=f"public/default/{name}")


EXCLAMATION = EXAMPLES / "exclamation_function.py"
EXCLAMATION_CLASS = "exclamation_function.ExclamationFunction"


def texts(messages: list[pulsar.Message]) -> list[str]:
    return [m.data().decode() for m in messages]


def thread_names() -> set[str]:
    return {thread.name for thread in threading.enumerate()}


def test_exclamation_example_processes_1000_messages(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        EXCLAMATION,
        class_name=EXCLAMATION_CLASS,
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    portal.call(runtime.start, spec)
    assert f"test-group-{spec.instance}" in thread_names()

    sent = [f"hello-{i}" for i in range(1000)]
    produce(pulsar_client, f"{unique_name}-in", [s.encode() for s in sent])
    results = receive(reader, 1000, timeout=20)

    assert sorted(texts(results)) == sorted(f"{s}!" for s in sent)
    assert wait_until(lambda: runtime.status(spec.instance).num_successfully_processed == 1000)
    status = runtime.status(spec.instance)
    assert status.running and status.error == "" and status.worker_id == "worker-1"
    assert status.num_received == 1000 and status.num_user_exceptions == 0
    assert status.num_system_exceptions == 0 and status.last_invocation_time > 0
    metrics = runtime.metrics(spec.instance)
    assert metrics.received_total == 1000 and metrics.processed_successfully_total == 1000
    assert metrics.avg_process_latency is not None and metrics.avg_process_latency < 50
    assert runtime.instances() == {spec.instance}
    assert receive(reader, 1, timeout=0.5) == []


def test_context_features(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    side = f"{unique_name}-side"
    spec = make_spec(
        unique_name,
        FUNCTIONS / "context_function.py",
        class_name="context_function.ContextFunction",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
        user_config={"suffix": "!!", "side-topic": side},
        secrets={"token": "s3cret"},
    )
    reader, side_reader = (
        subscribe(pulsar_client, f"{unique_name}-out"),
        subscribe(pulsar_client, side),
    )
    caplog.set_level(logging.INFO, logger="fnworker.function")
    portal.call(runtime.start, spec)

    ids = produce(
        pulsar_client,
        f"{unique_name}-in",
        [b"a", b"bb", b"ccc"],
        key="k1",
        properties={"color": "red"},
    )
    results = receive(reader, 3)

    assert texts(results) == [f"{x}!!|key=k1|color=red|secret=s3cret" for x in ("a", "bb", "ccc")]
    first = results[0].properties()
    assert first["color"] == "red"
    assert first["__pfn_input_topic__"] == f"persistent://public/default/{unique_name}-in"
    echoed = pulsar.MessageId.deserialize(base64.urlsafe_b64decode(first["__pfn_input_msg_id__"]))
    assert str(echoed) == str(ids[0])
    side_messages = receive(side_reader, 3)
    assert texts(side_messages) == ["a|1", "bb|2", "ccc|3"]
    assert side_messages[0].properties() == {"from": unique_name}
    assert wait_until(lambda: runtime.metrics(spec.instance).user_metrics.get("length_count") == 3)
    user_metrics = runtime.metrics(spec.instance).user_metrics
    assert user_metrics["length_sum"] == 6 and user_metrics["length_max"] == 3
    logged = [r for r in caplog.records if r.name == f"fnworker.function.{spec.instance}"]
    assert [r.getMessage() for r in logged] == ["processing a", "processing bb", "processing ccc"]
    assert {(r.function, r.instance) for r in logged} == {(spec.function.fqfn, spec.instance)}  # type: ignore[attr-defined]


def test_environment_secrets_provider(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("token", "from-environment")
    spec = make_spec(
        unique_name,
        FUNCTIONS / "context_function.py",
        class_name="context_function.ContextFunction",
        secrets_provider="environment",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
        user_config={"suffix": "", "side-topic": f"{unique_name}-side"},
        secrets={"token": "ignored"},
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    portal.call(runtime.start, spec)
    produce(pulsar_client, f"{unique_name}-in", [b"x"])
    assert texts(receive(reader, 1)) == ["x|key=|color=None|secret=from-environment"]


def test_plain_function_and_zip_package(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
    tmp_path: Path,
) -> None:
    plain = make_spec(
        f"{unique_name}-plain",
        FUNCTIONS / "plain_functions.py",
        class_name="plain_functions.shout",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-plain-out",
    )
    zipped = make_spec(
        f"{unique_name}-zip",
        zip_package(FUNCTIONS / "zipped", tmp_path / "zipped.zip"),
        class_name="zipped_function",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-zip-out",
    )
    plain_reader = subscribe(pulsar_client, f"{unique_name}-plain-out")
    zip_reader = subscribe(pulsar_client, f"{unique_name}-zip-out")
    portal.call(runtime.start, plain)
    portal.call(runtime.start, zipped)
    produce(pulsar_client, f"{unique_name}-in", [b"quiet"])
    assert texts(receive(plain_reader, 1)) == ["QUIET"]
    assert texts(receive(zip_reader, 1)) == ["[one] quiet"]


def test_pickle_and_user_serdes(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    package = FUNCTIONS / "serde_functions.py"
    pickled = make_spec(
        f"{unique_name}-pickle",
        package,
        class_name="serde_functions.DoubleFunction",
        custom_serde_inputs={f"{unique_name}-pin": "serde.PickleSerDe"},
        output=f"{unique_name}-pout",
        output_serde_class_name="PickleSerDe",
    )
    json_spec = make_spec(
        f"{unique_name}-json",
        package,
        class_name="serde_functions.SumFunction",
        input_specs={
            f"{unique_name}-jin": ConsumerConfig(serde_class_name="serde_functions.JsonSerDe")
        },
        output=f"{unique_name}-jout",
        output_serde_class_name="serde_functions.JsonSerDe",
    )
    pickle_reader = subscribe(pulsar_client, f"{unique_name}-pout")
    json_reader = subscribe(pulsar_client, f"{unique_name}-jout")
    portal.call(runtime.start, pickled)
    portal.call(runtime.start, json_spec)
    produce(pulsar_client, f"{unique_name}-pin", [pickle.dumps({"n": 21})])
    produce(pulsar_client, f"{unique_name}-jin", [b'{"values": [1, 2, 3.5]}'])
    assert pickle.loads(receive(pickle_reader, 1)[0].data()) == {"n": 42, "type": "dict"}
    assert texts(receive(json_reader, 1)) == ['{"sum": 6.5}']


def test_several_input_topics(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    topics = [f"{unique_name}-a", f"{unique_name}-b", f"{unique_name}-c"]
    spec = make_spec(
        unique_name,
        EXCLAMATION,
        class_name=EXCLAMATION_CLASS,
        inputs=topics[:2],
        custom_serde_inputs={topics[2]: "serde.IdentitySerDe"},
        output=f"{unique_name}-out",
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    portal.call(runtime.start, spec)
    for topic in topics:
        produce(pulsar_client, topic, [f"from-{topic}".encode()])
    results = receive(reader, 3)
    assert sorted(texts(results)) == sorted(f"from-{t}!" for t in topics)
    assert {m.properties()["__pfn_input_topic__"] for m in results} == {
        f"persistent://public/default/{t}" for t in topics
    }


def test_no_output_topic_still_processes_and_acknowledges(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name, EXCLAMATION, class_name=EXCLAMATION_CLASS, inputs=[f"{unique_name}-in"]
    )
    portal.call(runtime.start, spec)
    produce(pulsar_client, f"{unique_name}-in", [f"m{i}".encode() for i in range(50)])
    assert wait_until(lambda: runtime.status(spec.instance).num_successfully_processed == 50)
    portal.call(runtime.stop, spec.instance)
    leftover = function_subscription(pulsar_client, unique_name)
    assert receive(leftover, 1, timeout=1.0) == []


def test_user_exceptions_are_counted_and_redelivered_without_harm(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        FUNCTIONS / "raising_function.py",
        class_name="raising_function.RaisingFunction",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    portal.call(runtime.start, spec)
    produce(
        pulsar_client, f"{unique_name}-in", [b"good-1", b"bad-1", b"good-2", b"exit-1", b"good-3"]
    )

    assert sorted(texts(receive(reader, 3))) == ["ok:good-1", "ok:good-2", "ok:good-3"]
    assert wait_until(lambda: runtime.status(spec.instance).num_user_exceptions >= 4)
    status = runtime.status(spec.instance)
    assert status.running and status.num_successfully_processed == 3
    assert status.num_received >= 7
    kinds = {e.exception_string for e in status.latest_user_exceptions}
    assert kinds == {"ValueError: refusing bad-1", "SystemExit: 3"}
    assert len(status.latest_user_exceptions) <= 10
    assert all(e.timestamp_ms > 0 for e in status.latest_user_exceptions)


def test_poison_message_goes_to_the_dead_letter_topic(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    named = make_spec(
        unique_name,
        FUNCTIONS / "raising_function.py",
        class_name="raising_function.RaisingFunction",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
        max_message_retries=2,
        dead_letter_topic=f"{unique_name}-dlq",
    )
    default = make_spec(
        f"{unique_name}-d",
        FUNCTIONS / "raising_function.py",
        class_name="raising_function.RaisingFunction",
        inputs=[f"{unique_name}-in2"],
        sub_name="dsub",
        max_message_retries=1,
    )
    dead = subscribe(pulsar_client, f"{unique_name}-dlq")
    default_dead = subscribe(
        pulsar_client, f"persistent://public/default/{unique_name}-in2-dsub-DLQ"
    )
    portal.call(runtime.start, named)
    portal.call(runtime.start, default)
    produce(pulsar_client, f"{unique_name}-in", [b"bad-poison"])
    produce(pulsar_client, f"{unique_name}-in2", [b"bad-other"])

    assert texts(receive(dead, 1)) == ["bad-poison"]
    assert texts(receive(default_dead, 1)) == ["bad-other"]
    assert runtime.status(named.instance).num_user_exceptions == 3
    assert runtime.status(default.instance).num_user_exceptions == 2


def test_at_most_once_acknowledges_before_processing(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        FUNCTIONS / "raising_function.py",
        class_name="raising_function.RaisingFunction",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
        processing_guarantees="ATMOST_ONCE",
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    portal.call(runtime.start, spec)
    produce(pulsar_client, f"{unique_name}-in", [b"bad-1", b"good-1"])
    assert texts(receive(reader, 1)) == ["ok:good-1"]
    time.sleep(1.0)  # five nack delays: an ATLEAST_ONCE instance would have seen bad-1 again
    status = runtime.status(spec.instance)
    assert (status.num_received, status.num_user_exceptions) == (2, 1)
    portal.call(runtime.stop, spec.instance)
    leftover = function_subscription(pulsar_client, unique_name)
    assert receive(leftover, 1, timeout=1.0) == []


def test_a_result_that_cannot_be_serialized_is_a_system_exception(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        FUNCTIONS / "serde_functions.py",
        class_name="serde_functions.DoubleFunction",
        custom_serde_inputs={f"{unique_name}-in": "PickleSerDe"},
        output=f"{unique_name}-out",
    )
    portal.call(runtime.start, spec)
    produce(pulsar_client, f"{unique_name}-in", [pickle.dumps({"n": 1})])
    assert wait_until(lambda: runtime.status(spec.instance).num_system_exceptions >= 2)
    status = runtime.status(spec.instance)
    assert status.running and status.num_user_exceptions == 0
    assert status.num_successfully_processed == 0 and status.num_received >= 2
    assert status.latest_system_exceptions[0].exception_string.startswith(
        "TypeError: IdentitySerde"
    )


def test_manual_acknowledgement_through_the_context(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        FUNCTIONS / "manual_ack_function.py",
        class_name="manual_ack_function.ManualAckFunction",
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
        auto_ack=False,
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    portal.call(runtime.start, spec)
    produce(pulsar_client, f"{unique_name}-in", [b"one", b"keep-1"])
    assert sorted(texts(receive(reader, 2))) == [
        f"keep-1@{unique_name}-in",
        f"one@{unique_name}-in",
    ]
    portal.call(runtime.stop, spec.instance)
    leftover = function_subscription(pulsar_client, unique_name)
    assert texts(receive(leftover, 2, timeout=1.5)) == ["keep-1"]


def test_effectively_once_runs_on_a_failover_subscription(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        EXCLAMATION,
        class_name=EXCLAMATION_CLASS,
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
        processing_guarantees="EFFECTIVELY_ONCE",
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    portal.call(runtime.start, spec)
    produce(pulsar_client, f"{unique_name}-in", [f"e{i}".encode() for i in range(5)])
    assert sorted(texts(receive(reader, 5))) == [f"e{i}!" for i in range(5)]
    assert receive(reader, 1, timeout=0.5) == []


def test_update_with_new_code_takes_effect_in_the_same_process(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
    tmp_path: Path,
) -> None:
    common = {"inputs": [f"{unique_name}-in"], "output": f"{unique_name}-out"}
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    v1 = make_spec(
        unique_name,
        FUNCTIONS / "update_v1" / "updatable.py",
        class_name="updatable.Updatable",
        **common,
    )
    portal.call(runtime.start, v1)
    produce(pulsar_client, f"{unique_name}-in", [b"a"])
    assert texts(receive(reader, 1)) == ["v1:a"]

    portal.call(runtime.stop, v1.instance)
    v2 = make_spec(
        unique_name,
        FUNCTIONS / "update_v2" / "updatable.py",
        class_name="updatable.Updatable",
        version=2,
        **common,
    )
    portal.call(runtime.start, v2)
    produce(pulsar_client, f"{unique_name}-in", [b"b"])
    assert texts(receive(reader, 1)) == ["v2:b"]

    zip_v1 = zip_package(FUNCTIONS / "zipped", tmp_path / "one" / "zipped.zip")
    zip_v2 = zip_package(FUNCTIONS / "zipped_v2", tmp_path / "two" / "zipped.zip")
    portal.call(
        runtime.start,
        make_spec(unique_name, zip_v1, class_name="zipped_function", version=3, **common),
    )
    produce(pulsar_client, f"{unique_name}-in", [b"c"])
    assert texts(receive(reader, 1)) == ["[one] c"]
    portal.call(
        runtime.start,
        make_spec(unique_name, zip_v2, class_name="zipped_function", version=4, **common),
    )
    produce(pulsar_client, f"{unique_name}-in", [b"d"])
    assert texts(receive(reader, 1)) == ["[two] d"]


def test_stop_stops_consumption_and_the_thread(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        EXCLAMATION,
        class_name=EXCLAMATION_CLASS,
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    portal.call(runtime.start, spec)
    produce(pulsar_client, f"{unique_name}-in", [b"before"])
    assert texts(receive(reader, 1)) == ["before!"]

    started = time.monotonic()
    portal.call(runtime.stop, spec.instance)
    assert time.monotonic() - started < 2.0
    assert runtime.status(spec.instance) is None and runtime.instances() == set()
    assert f"test-group-{spec.instance}" not in thread_names()
    produce(pulsar_client, f"{unique_name}-in", [b"after"])
    assert receive(reader, 1, timeout=1.0) == []
    portal.call(runtime.stop, spec.instance)  # stopping again is a no-op


def test_bad_package_shows_in_status_and_is_not_retried(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        EXCLAMATION,
        class_name="exclamation_function.Nope",
        inputs=[f"{unique_name}-in"],
    )
    portal.call(runtime.start, spec)
    status = runtime.status(spec.instance)
    assert not status.running and status.num_restarts == 0
    assert status.error.startswith("'Nope' is not defined in module 'exclamation_function'")
    assert runtime.instances() == {spec.instance}
    assert runtime.metrics(spec.instance).received_total == 0
    assert f"test-group-{spec.instance}" not in thread_names()

    portal.call(runtime.restart, spec.instance)
    portal.call(runtime.restart, spec.instance)
    status = runtime.status(spec.instance)
    assert not status.running and status.num_restarts == 2 and "'Nope'" in status.error


def test_restart_keeps_counting_and_resumes(
    runtime: ThreadRuntime,
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    spec = make_spec(
        unique_name,
        EXCLAMATION,
        class_name=EXCLAMATION_CLASS,
        inputs=[f"{unique_name}-in"],
        output=f"{unique_name}-out",
    )
    reader = subscribe(pulsar_client, f"{unique_name}-out")
    portal.call(runtime.start, spec)
    portal.call(runtime.restart, spec.instance)
    status = runtime.status(spec.instance)
    assert status.running and status.num_restarts == 1
    produce(pulsar_client, f"{unique_name}-in", [b"again"])
    assert texts(receive(reader, 1)) == ["again!"]


class SteppedClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.time = 1000.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += seconds


def test_an_instance_whose_subscribe_does_not_answer_says_so_in_status(
    portal: BlockingPortal,
    make_spec: SpecMaker,
    pulsar_client: pulsar.Client,
    unique_name: str,
) -> None:
    """pulsar-lite refuses a Shared consumer on a subscription an Exclusive consumer
    holds, and the client retries: the instance is still starting. Once its start has
    lasted a few seconds on the runtime's clock (a stepped clock here, so the test
    does not wait them out), its status says why instead of a bare running false;
    when the subscription is free again, the retry succeeds and it runs."""
    clock = SteppedClock()
    runtime = ThreadRuntime(thread_group_name="test-group", clock=clock)
    holder = pulsar_client.subscribe(
        f"{unique_name}-in",
        f"public/default/{unique_name}",
        consumer_type=pulsar.ConsumerType.Exclusive,
    )
    spec = make_spec(
        unique_name, EXCLAMATION, class_name=EXCLAMATION_CLASS, inputs=[f"{unique_name}-in"]
    )
    try:
        portal.call(runtime.start, spec)
        status = runtime.status(spec.instance)
        assert status is not None and not status.running and status.error == ""
        clock.time += 4.0
        assert runtime.status(spec.instance).error == ""
        clock.time += 2.0
        status = runtime.status(spec.instance)
        assert not status.running
        assert status.error.startswith("still starting after 6 s: subscribing")
        holder.close()
        assert wait_until(lambda: runtime.status(spec.instance).running, 10)
        assert runtime.status(spec.instance).error == ""
    finally:
        if holder.is_connected():
            holder.close()
        portal.call(runtime.aclose)
