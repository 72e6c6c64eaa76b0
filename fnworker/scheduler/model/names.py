"""Checks tenant, namespace and function names and normalizes Pulsar topic names. Pure, no I/O.

Names follow Pulsar's NamedEntity rule (letters, digits, ``_``, ``-``, ``=``, ``:``,
``.``; ASCII only, as Java's ``\\w`` is). fnworker is stricter where a name becomes a
path on disk: it also rejects ``.``-only names, ``..`` anywhere and names over 256
characters.

Topics follow Pulsar's TopicName: ``my-topic`` means ``persistent://public/default/my-topic``,
``tenant/ns/topic`` means ``persistent://tenant/ns/topic``, and a full name is
``persistent://`` or ``non-persistent://`` followed by ``tenant/ns/topic``. fnworker
does not accept Pulsar's deprecated cluster-qualified names (``tenant/cluster/ns/topic``),
and a topic's local name must be printable without spaces.

Every error is an ``ApiError(400, ...)`` naming the field, the value and what is valid.
"""

from __future__ import annotations

import re

from fnworker.scheduler.model.errors import ApiError, bad_request

# The package kinds a function may have: a Python file, a zip of modules, a wheel.
PACKAGE_SUFFIXES = (".py", ".zip", ".whl")

NAME_MAX_LENGTH = 256
TOPIC_DOMAINS = ("persistent", "non-persistent")
DEFAULT_TENANT = "public"
DEFAULT_NAMESPACE = "default"

_NAMED_ENTITY = re.compile(r"[-=:.\w]+", re.ASCII)
_LOCAL_NAME = re.compile(r"[^\s/\x00-\x1f\x7f]+")
_VALID_NAME = "letters, digits and - _ = : . (no '..'), at most 256 characters"
_VALID_TOPIC = (
    "a topic such as my-topic, tenant/namespace/topic or "
    "persistent://tenant/namespace/topic (or non-persistent://...)"
)


def check_name(field: str, value: str) -> str:
    """Return ``value`` if it is a valid tenant, namespace or function name."""
    if not _is_valid_name(value):
        raise bad_request(f"{field} '{value}' is not valid; expected {_VALID_NAME}")
    return value


def _is_valid_name(value: str) -> bool:
    """NamedEntity's rule plus fnworker's path-safety rules."""
    return (
        0 < len(value) <= NAME_MAX_LENGTH
        and _NAMED_ENTITY.fullmatch(value) is not None
        and ".." not in value
        and value != "."
    )


def check_function_name(tenant: str, namespace: str, name: str) -> None:
    """Check the three parts of a fully qualified function name."""
    check_name("tenant", tenant)
    check_name("namespace", namespace)
    check_name("function name", name)


def parse_fqfn(fqfn: str) -> tuple[str, str, str]:
    """Split and check ``tenant/namespace/name``."""
    parts = fqfn.split("/")
    if len(parts) != 3:
        raise bad_request(f"fqfn '{fqfn}' is not valid; expected tenant/namespace/name")
    tenant, namespace, name = parts
    check_function_name(tenant, namespace, name)
    return tenant, namespace, name


def normalize_topic(name: str, field: str = "topic") -> str:
    """The complete form of a topic name (``domain://tenant/namespace/topic``)."""
    domain, tenant, namespace, local = _split_topic(name, field)
    if _LOCAL_NAME.fullmatch(local) is None or len(local) > NAME_MAX_LENGTH:
        raise _bad_topic(
            field, name, "its local name must be 1 to 256 printable characters without spaces"
        )
    return f"{domain}://{tenant}/{namespace}/{local}"


def normalize_topics_pattern(pattern: str, field: str = "topicsPattern") -> str:
    """The complete form of a topics pattern; its local part must be a valid regex."""
    domain, tenant, namespace, local = _split_topic(pattern, field)
    try:
        re.compile(local)
    except re.error as error:
        raise _bad_topic(field, pattern, f"its local part is not a valid regex ({error})") from None
    return f"{domain}://{tenant}/{namespace}/{local}"


def is_valid_topic(name: str) -> bool:
    """Whether ``normalize_topic`` accepts ``name``."""
    try:
        normalize_topic(name)
    except ApiError:
        return False
    return True


def _split_topic(name: str, field: str) -> tuple[str, str, str, str]:
    """Domain, tenant, namespace and local name of a short or complete topic name."""
    if "://" in name:
        domain, _, rest = name.partition("://")
        if domain not in TOPIC_DOMAINS:
            raise _bad_topic(
                field, name, f"its domain '{domain}' must be persistent or non-persistent"
            )
    else:
        domain, rest = TOPIC_DOMAINS[0], _expand_short(name, field)
    parts = rest.split("/")
    if len(parts) != 3 or not all(parts):
        raise _bad_topic(
            field, name, "it must have exactly three non-empty parts tenant/namespace/topic"
        )
    tenant, namespace, local = parts
    if not (_is_valid_name(tenant) and _is_valid_name(namespace)):
        raise _bad_topic(field, name, f"its tenant and namespace must use {_VALID_NAME}")
    return domain, tenant, namespace, local


def _expand_short(name: str, field: str) -> str:
    """``topic`` → ``public/default/topic``; ``t/ns/topic`` stays; anything else is an error."""
    count = len(name.split("/"))
    if count == 1 and name:
        return f"{DEFAULT_TENANT}/{DEFAULT_NAMESPACE}/{name}"
    if count == 3:
        return name
    raise _bad_topic(field, name, "a short name must be topic or tenant/namespace/topic")


def _bad_topic(field: str, name: str, why: str) -> ApiError:
    """The 400 for an invalid topic name."""
    return bad_request(
        f"{field} '{name}' is not a valid topic name: {why}; expected {_VALID_TOPIC}"
    )
