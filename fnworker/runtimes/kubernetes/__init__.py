"""The Kubernetes runtime: pure manifest rendering (names, settings, manifests, pod_template,
customizer, secrets), the driver and its I/O parts in the worker (api_calls, the only
kubernetes_asyncio importer; job_objects, pod_watch, pod_readings) and the pod's own entry
point (pod_main, pod_server)."""
