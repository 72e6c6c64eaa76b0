"""The Kubernetes runtime: pure manifest rendering (names, manifests, customizer, secrets),
the driver that applies them (the only I/O in the worker) and the pod's own entry point
(pod_main, pod_server)."""
