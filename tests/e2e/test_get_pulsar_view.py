"""``GET .../{function}`` on a real ``fnworker standalone`` answers the FunctionConfig
Pulsar's worker answers (rebuilt from what it stored, FunctionConfigUtils
.convertFromDetails), not the body pulsar-admin sent: inputs as ``inputSpecs``, defaults
written out, no ``py`` (the client's local path). Registered and updated with bodies
shaped as the Java admin client sends them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.helpers import BASE, EXAMPLE, call, running_count, wait_for
from tests.e2e.test_rest_api_pulsar_shapes import java_register, java_update

pytestmark = pytest.mark.slow

NAME = "viewed"
TOPIC = "persistent://public/default/{}".format


def pulsars_answer(**changed: Any) -> dict[str, Any]:
    """What Pulsar's worker answers for ``pulsar-admin functions create --py
    /home/user/exclamation_function.py --classname ... --inputs ... --output ...
    --user-config '{"greeting": "hi"}'`` (Jackson, NON_NULL, declaration order)."""
    return {
        "tenant": "public",
        "namespace": "default",
        "name": NAME,
        "className": "exclamation_function.ExclamationFunction",
        "inputSpecs": {
            TOPIC(f"{NAME}-in"): {
                "schemaProperties": {},
                "consumerProperties": {},
                "poolMessages": False,
                "regexPattern": False,
            }
        },
        "output": TOPIC(f"{NAME}-out"),
        "producerConfig": {
            "useThreadLocalProducers": False,
            "batchBuilder": "",
            "compressionType": "LZ4",
        },
        "processingGuarantees": "ATLEAST_ONCE",
        "retainOrdering": False,
        "retainKeyOrdering": False,
        "forwardSourceMessageProperty": True,
        "userConfig": {"greeting": "hi"},
        "runtime": "PYTHON",
        "autoAck": True,
        "parallelism": 1,
        "resources": {"cpu": 1.0, "ram": 1073741824, "disk": 10737418240},
        "cleanupSubscription": True,
        "subscriptionPosition": "Latest",
        **changed,
    }


@pytest.fixture(scope="module")
def base(standalone_worker: Any) -> str:
    return str(standalone_worker.admin_url)


def test_get_answers_pulsars_rebuilt_config_not_the_submitted_one(base: str) -> None:
    reply = java_register(base, NAME, userConfig={"greeting": "hi"})
    assert reply.status == 200, reply.body
    answer = call(base, "GET", f"{BASE}/{NAME}").json()
    assert answer == pulsars_answer()
    assert list(answer) == list(pulsars_answer())
    assert "py" not in answer and "inputs" not in answer


def test_an_update_is_merged_into_what_is_stored_and_answered_rebuilt(base: str) -> None:
    """The stored record keeps the submitted inputs: an update merges into them and the
    instances run on them; only the answer is rebuilt."""
    wait_for(lambda: running_count(base, NAME) == 1, what="the first instance running")
    reply = java_update(base, NAME, parallelism=2)
    assert reply.status == 200, reply.body
    assert call(base, "GET", f"{BASE}/{NAME}").json() == pulsars_answer(parallelism=2)
    wait_for(lambda: running_count(base, NAME) == 2, what="both instances running")
    assert call(base, "GET", f"{BASE}/{NAME}/download").body == EXAMPLE.read_bytes()
