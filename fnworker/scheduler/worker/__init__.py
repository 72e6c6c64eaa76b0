"""The worker process: start-up, the worker service that wires every part together, its
loops, the demo. May import every layer except the CLI.
"""
