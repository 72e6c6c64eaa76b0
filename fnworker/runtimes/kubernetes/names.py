"""Pulsar function names as valid Kubernetes names and label values. Pure, no I/O.

Job names follow Pulsar's KubernetesRuntime: ``pf-<tenant>-<namespace>-<name>``,
lowercased, with every character outside ``[a-z0-9-]`` replaced by ``-``. When that
sanitizing changed anything, or a custom ``jobName`` is used, ``-`` and the first 8
hex digits of a SHA-1 of the original names are appended, so ``A_b`` and ``a-b``
never share a StatefulSet.

Differences from Pulsar, all so that every name Pulsar would accept still maps to
the same job name:

- ``.`` is replaced too: the job name is also the headless Service's name, which
  must be an RFC 1035 label (no dots), so Pulsar's dotted names failed at creation.
- Job names are at most 52 characters, not Pulsar's 53: the StatefulSet controller
  labels every pod ``controller-revision-hash=<job name>-<revision hash>``, the hash up
  to 10 characters, and a label value holds 63, so 52 + 1 + 10 = 63. A longer name
  (Pulsar rejects those above 53; at 53 its pods fail to be created at most rollouts)
  is cut to 43 characters and hash-suffixed instead of rejected. The other names
  Kubernetes derives fit then too: pods ``<job>-<ordinal>`` and their
  ``statefulset.kubernetes.io/pod-name`` label (52 + 1 + up to 10 digits), the Service
  (the job name). ``derived_names`` lists them; the tests check every length.
- A custom job name that does not start with a letter gets a ``pf-`` prefix.

Label values follow Pulsar's rule: lowercase, characters outside ``[a-z0-9-_.]``
become ``-``, a non-alphanumeric first or last character becomes ``0``, at most 63
characters. Label values may therefore collide; the selector also carries the
job name (``JOB_LABEL``), which does not.
"""

from __future__ import annotations

import hashlib
import re

from fnworker.runtimes.kubernetes.errors import ManifestError

JOB_NAME_MAX = 52
REVISION_HASH_MAX = 10
"""Longest revision hash the StatefulSet controller appends (a 32-bit FNV hash, encoded)."""
LABEL_VALUE_MAX = 63
HASH_LENGTH = 8
JOB_LABEL = "fnworker/job-name"
"""Label carrying the job name: unique per function, so selectors never overlap."""

_INVALID_POD_CHARS = re.compile(r"[^a-z0-9-]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-z0-9\-_.]")
RFC1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
RFC1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
RFC1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def short_hash(text: str) -> str:
    """The first 8 hex digits of SHA-1 of ``text`` (Pulsar's job-name suffix)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def to_valid_pod_name(text: str) -> str:
    """Lowercase ``text`` and replace every character outside ``[a-z0-9-]`` with ``-``."""
    return _INVALID_POD_CHARS.sub("-", text.lower())


def job_name(tenant: str, namespace: str, name: str, custom: str | None = None) -> str:
    """The StatefulSet and Service name of a function (``custom``: a jobName override)."""
    if custom:
        identity = f"{custom}-{tenant}-{namespace}-{name}"
        base = to_valid_pod_name(custom)
        if not base[:1].isalpha():
            base = f"pf-{base}"
        return _with_hash(base, identity)
    original = f"pf-{tenant}-{namespace}-{name}"
    base = to_valid_pod_name(original)
    if base == original and len(base) <= JOB_NAME_MAX and base[-1].isalnum():
        return base
    return _with_hash(base, f"{tenant}-{namespace}-{name}")


def _with_hash(base: str, identity: str) -> str:
    """``base-<hash of identity>``, ``base`` cut so the whole fits in 53 characters."""
    room = JOB_NAME_MAX - HASH_LENGTH - 1
    return f"{base[:room]}-{short_hash(identity)}"


def derived_names(job: str, max_ordinal: int) -> dict[str, str]:
    """The names and label values Kubernetes makes from a job name, at their longest:
    the Service, the last pod's name (also its ``pod-name`` label and hostname), and
    the ``controller-revision-hash`` label value."""
    return {
        "service": job,
        "pod": f"{job}-{max_ordinal}",
        "controller-revision-hash": f"{job}-{'x' * REVISION_HASH_MAX}",
    }


def label_value(text: str) -> str:
    """``text`` as a valid label value, by Pulsar's sanitizing rule."""
    value = _INVALID_LABEL_CHARS.sub("-", text.lower())[:LABEL_VALUE_MAX]
    if value and not value[0].isalnum():
        value = "0" + value[1:]
    if value and not value[-1].isalnum():
        value = value[:-1] + "0"
    return value


def check_label_key(field: str, key: str) -> str:
    """Return ``key`` if it is a valid label or annotation key, else raise ManifestError."""
    prefix, slash, name = key.rpartition("/")
    valid_prefix = not slash or (
        len(prefix) <= 253 and RFC1123_SUBDOMAIN.fullmatch(prefix) is not None
    )
    if valid_prefix and len(name) <= 63 and _LABEL_NAME.fullmatch(name):
        return key
    raise ManifestError(
        f"{field} key '{key}' is not valid; expected an optional DNS prefix and '/', then "
        "at most 63 letters, digits, '-', '_' or '.' starting and ending with a letter or digit"
    )


def check_label_value(field: str, value: object) -> str:
    """Return ``value`` if it is a valid label value, else raise ManifestError."""
    if isinstance(value, str) and len(value) <= LABEL_VALUE_MAX and LABEL_VALUE.fullmatch(value):
        return value
    raise ManifestError(
        f"{field} value {value!r} is not valid; expected a string of at most 63 letters, "
        "digits, '-', '_' or '.' starting and ending with a letter or digit"
    )


def check_namespace(field: str, value: object) -> str:
    """Return ``value`` if it is a valid Kubernetes namespace name, else raise ManifestError."""
    if isinstance(value, str) and len(value) <= 63 and RFC1123_LABEL.fullmatch(value):
        return value
    raise ManifestError(
        f"{field} {value!r} is not a valid Kubernetes namespace; expected at most 63 "
        "lowercase letters, digits or '-', starting and ending with a letter or digit"
    )


def pod_dns_name(job: str, index: int, job_namespace: str, domain_suffix: str) -> str:
    """The DNS name of pod ``index`` behind the headless Service ``job``."""
    return f"{job}-{index}.{job}.{job_namespace}{domain_suffix}"
