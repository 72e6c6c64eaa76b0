"""The worker's core, in layers (bottom to top): model, settings, security and decide (pure),
then admin, api, worker, cli. The import contracts in pyproject.toml forbid upward
imports; docs/architecture.md draws them.
"""
