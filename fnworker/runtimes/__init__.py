"""Where instances run: the RuntimeDriver protocol and its thread, process and Kubernetes
drivers, and the instance host they share. Imports scheduler.model, .settings and .decide
only; never the coordination, admin, API or worker layers.
"""
