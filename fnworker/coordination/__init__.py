"""How workers of one cluster agree: membership, leadership, assignments and function
metadata on per-cluster topics, over Pulsar or in memory. Imports scheduler.model and
.settings only; never the runtimes.
"""
