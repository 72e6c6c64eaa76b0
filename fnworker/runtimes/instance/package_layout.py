"""Where the modules of a function package live: the kind of package (.py, .zip,
.whl), its source roots and dependency folder, and how a ``className`` splits into
module and attribute. Reads a package's file listing, never executes it.

Pulsar's zip layout is ``<name>/src/...`` with dependency wheels in
``<name>/deps``; modules at the zip root are accepted too. A wheel's root is its
only source root. A ``.py`` package is one module.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import msgspec

PackageKind = Literal["py", "zip", "wheel"]


class PackageError(Exception):
    """A function package cannot run as configured; ``str()`` is one clear sentence."""


class ClassNameRef(msgspec.Struct, frozen=True, kw_only=True):
    """A ``className`` split at its last dot: ``module`` may be empty (``process``-module form)."""

    text: str
    module: str
    attribute: str


class PackageLayout(msgspec.Struct, frozen=True, kw_only=True):
    """Source roots (relative, ``""`` is the top) and the dependency folder of a package."""

    kind: PackageKind
    roots: tuple[str, ...]
    deps: str | None = None


def parse_class_name(class_name: str) -> ClassNameRef:
    """Split ``a.b.C`` into module ``a.b`` and attribute ``C``; PackageError if malformed."""
    text = class_name.strip()
    parts = text.split(".")
    if not text or not all(part.isidentifier() for part in parts):
        raise PackageError(
            f"className '{class_name}' is not valid; expected module.Class, module.function "
            "or a module name"
        )
    return ClassNameRef(text=text, module=".".join(parts[:-1]), attribute=parts[-1])


def package_kind(path: Path, file_name: str | None = None) -> PackageKind:
    """Tell a zip, a wheel and a single .py file apart by content (names may be opaque)."""
    name = (file_name or path.name).lower()
    if not zipfile.is_zipfile(path):
        return "py"
    if name.endswith(".whl"):
        return "wheel"
    with zipfile.ZipFile(path) as archive:
        return "wheel" if is_wheel_listing(archive.namelist()) else "zip"


def is_wheel_listing(names: Iterable[str]) -> bool:
    """True when the archive has a top-level ``*.dist-info/`` folder."""
    return any(name.split("/", 1)[0].endswith(".dist-info") for name in names)


def layout_of(kind: PackageKind, names: Iterable[str]) -> PackageLayout:
    """The source roots of a zip (``<x>/src``, ``src``, the top) or of a wheel (the top)."""
    if kind != "zip":
        return PackageLayout(kind=kind, roots=("",))
    listing = [name for name in names if not name.startswith("__MACOSX/")]
    bases = src_bases(listing)
    if not bases:
        return PackageLayout(kind=kind, roots=("",))
    base = bases[0]
    deps = f"{base}deps" if any(n.startswith(f"{base}deps/") for n in listing) else None
    return PackageLayout(kind=kind, roots=(f"{base}src", ""), deps=deps)


def src_bases(names: list[str]) -> list[str]:
    """Folders (``""`` or ``x/``) that hold a ``src/`` folder, top-level first."""
    bases: list[str] = []
    for name in names:
        parts = name.split("/")
        if len(parts) >= 2 and parts[0] == "src":
            base = ""
        elif len(parts) >= 3 and parts[1] == "src":
            base = f"{parts[0]}/"
        else:
            continue
        if base not in bases:
            bases.append(base)
    return sorted(bases, key=len)


def module_candidates(root: str, module: str) -> tuple[str, str]:
    """The two files (relative, '/'-separated) that can hold ``module`` under ``root``."""
    prefix = f"{root}/" if root else ""
    stem = prefix + module.replace(".", "/")
    return f"{stem}.py", f"{stem}/__init__.py"


def find_module(layout: PackageLayout, names: set[str], module: str) -> str | None:
    """The archive member holding ``module``, searching the roots in order."""
    for root in layout.roots:
        for candidate in module_candidates(root, module):
            if candidate in names:
                return candidate
    return None


def py_module_matches(module: str, file_name: str | None) -> bool:
    """Whether a single-file package can be ``module`` (any name if the file name is unknown)."""
    if "." in module:
        return False
    return file_name is None or Path(file_name).stem == module
