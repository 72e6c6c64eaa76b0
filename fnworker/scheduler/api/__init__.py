"""The REST API: Pulsar's ``/admin/v3/functions`` shape over a ``FunctionsAdmin``.

``make_app`` (in ``app``) is the one entry point; the route tables live in
``functions_routes`` and ``worker_routes``, the OpenAPI document is built from them.
Imports scheduler.admin and the layers below it; never the worker or the CLI.
"""
