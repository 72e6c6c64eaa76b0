"""The harness's own fixtures: the in-test Kubernetes API server and its fake kubelet."""

from tests.harness.kubernetes_api import kubernetes_api  # noqa: F401 - the fake API server
from tests.harness.kubernetes_kubelet import kubelet  # noqa: F401 - the fake kubelet
