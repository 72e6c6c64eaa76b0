"""Resolves a serde class name to a serializer object: Pulsar's built-ins under any
of their spellings (``serde.IdentitySerDe``, ``pulsar.functions.serde.PickleSerDe``,
bare ``IdentitySerDe``) or a user class from the function's package
(``mymodule.MySerDe``). IdentitySerDe is the default. Imports user modules (I/O).
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Protocol

from pulsar.functions import serde as pulsar_serde

from fnworker.runtimes.instance.loader import LoadedFunction
from fnworker.runtimes.instance.package_layout import PackageError

DEFAULT_SERDE = "serde.IdentitySerDe"
BUILTIN_PREFIXES = ("pulsar.functions.serde.", "functions.serde.", "serde.")
BUILTINS: dict[str, type[Any]] = {
    "IdentitySerDe": pulsar_serde.IdentitySerDe,
    "PickleSerDe": pulsar_serde.PickleSerDe,
}


NOT_NUMERIC = re.compile(r"[^\d\s+\-._eEjJ()iInNfFaAtTyY]")
"""A character no int, float or complex literal can contain (Unicode digits included)."""


class FastIdentitySerDe(pulsar_serde.IdentitySerDe):  # type: ignore[misc]
    """Pulsar's IdentitySerDe, same results, without three failed conversions per text.

    Pulsar decodes the bytes and tries int, float, complex, then str. Text with a
    character no number can contain goes straight to str; anything else takes
    Pulsar's path unchanged.
    """

    def deserialize(self, input_bytes: bytes) -> Any:
        try:
            text = input_bytes.decode("utf-8")
        except Exception:  # noqa: BLE001 - Pulsar returns undecodable input unchanged
            return input_bytes
        if NOT_NUMERIC.search(text):
            return text
        for kind in (int, float, complex):
            try:
                return kind(text)
            except Exception:  # noqa: BLE001, S110 - as Pulsar: try the next type
                pass
        return text


class SerDe(Protocol):
    """What the host needs from a serde (Pulsar's ``SerDe`` interface)."""

    def serialize(self, input: Any) -> bytes: ...

    def deserialize(self, input_bytes: bytes) -> Any: ...


def builtin_serde_class(name: str) -> type[Any] | None:
    """The Pulsar serde a name spells, if it spells one."""
    bare = name
    for prefix in BUILTIN_PREFIXES:
        if name.startswith(prefix):
            bare = name[len(prefix) :]
            break
    if bare != name or "." not in name:
        return BUILTINS.get(bare)
    return None


def serde_class(name: str | None, code: LoadedFunction | None = None) -> type[Any]:
    """The serde class ``name`` refers to; PackageError (one sentence) if none."""
    if not name:
        return FastIdentitySerDe
    builtin = builtin_serde_class(name)
    if builtin is pulsar_serde.IdentitySerDe:
        return FastIdentitySerDe
    if builtin is not None:
        return builtin
    module_name, _, attribute = name.rpartition(".")
    found = getattr(module_of(module_name, name, code), attribute, None)
    if not isinstance(found, type):
        raise PackageError(f"serde class '{name}' is not defined in module '{module_name or '?'}'")
    return found


def module_of(module_name: str, serde_name: str, code: LoadedFunction | None) -> Any:
    """The module a user serde lives in: the entry module, or one importable from the package."""
    if code is not None and module_name in ("", code.module_name):
        return code.module
    if not module_name:
        raise PackageError(
            f"serde class '{serde_name}' is not a Pulsar serde; expected IdentitySerDe, "
            "PickleSerDe or module.Class"
        )
    try:
        return importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - user module import errors of any kind
        raise PackageError(
            f"serde class '{serde_name}' could not be imported: {type(error).__name__}: {error}"
        ) from None


def make_serde(name: str | None, code: LoadedFunction | None = None) -> SerDe:
    """A fresh serde object for ``name`` (created with no arguments, as Pulsar does)."""
    kind = serde_class(name, code)
    try:
        made: SerDe = kind()
    except Exception as error:
        raise PackageError(
            f"creating serde '{name}' raised {type(error).__name__}: {error}"
        ) from error
    return made
