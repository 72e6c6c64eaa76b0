"""The one error the pure Kubernetes modules raise. No I/O."""

from __future__ import annotations


class ManifestError(ValueError):
    """A function or runtime setting cannot become a valid Kubernetes object.

    The message is one sentence naming the key, the value and what is valid.
    """
