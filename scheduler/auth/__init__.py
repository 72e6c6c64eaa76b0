"""Security of the worker's REST API: key material, token verification, the roles
model (who may do what), and the settings built from ``functions_worker.yml``.

``key_material`` reads keys (file and environment I/O); ``tokens`` and ``policy``
are pure; ``settings`` turns a ``WorkerConfig`` into the objects the HTTP
middleware (``fnworker.scheduler.api.auth``) uses. See docs/security.md.
"""
