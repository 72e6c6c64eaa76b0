"""fnworker: a Python functions worker for Apache Pulsar.

Three packages, one per part of the product: ``scheduler`` (the worker's core, its
REST API and CLI), ``runtimes`` (where instances run) and ``coordination`` (how the
workers of one cluster agree). docs/architecture.md draws their layers.
"""
