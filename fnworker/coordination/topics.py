"""The names of one cluster's coordination topics, all inside its own namespace
(``pulsarFunctionsNamespace``), so two clusters sharing a broker never see each
other's workers, leader, functions or assignments. Pure."""

from __future__ import annotations

import hashlib
import re

import msgspec

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class ClusterTopics(msgspec.Struct, frozen=True, kw_only=True):
    """Full topic names for one cluster."""

    namespace: str
    coordinate: str
    heartbeats: str
    metadata: str
    packages: str
    uploads: str
    """The uploads index: one ``UploadRecord`` per upload (coordination/uploads.py)."""
    assignments_prefix: str
    metadata_snapshots: str = ""
    """Snapshots of the metadata topic (coordination/metadata_snapshot.py)."""

    def assignments_of(self, worker_id: str) -> str:
        """The assignment topic only ``worker_id`` reads."""
        return f"{self.assignments_prefix}-{topic_safe(worker_id)}"


def topic_safe(name: str) -> str:
    """A worker id as a topic-name part: unsafe characters replaced, plus a short hash
    so ids that differ only in those characters never share a topic."""
    cleaned = _UNSAFE.sub("_", name)
    if cleaned == name:
        return name
    return f"{cleaned}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def cluster_topics(
    namespace: str,
    metadata: str = "metadata",
    assignments: str = "assignments",
    coordinate: str = "coordinate",
) -> ClusterTopics:
    """The topics of the cluster whose functions namespace is ``namespace``."""
    base = f"persistent://{namespace}"
    return ClusterTopics(
        namespace=namespace,
        coordinate=f"{base}/{coordinate}",
        heartbeats=f"{base}/{coordinate}-heartbeats",
        metadata=f"{base}/{metadata}",
        packages=f"{base}/{metadata}-packages",
        uploads=f"{base}/{metadata}-uploads",
        assignments_prefix=f"{base}/{assignments}",
        metadata_snapshots=f"{base}/{metadata}-snapshots",
    )
