"""In-test stand-ins for what fnworker talks to (a Kubernetes API server, a kubelet,
their schemas), and the tests of those stand-ins (they test the harness, not fnworker)."""
