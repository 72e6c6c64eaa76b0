"""Checks, without running any user code, that a package defines its ``className``:
parses the entry module with ``ast`` and looks for the class or function. Reads the
package file; executes nothing.

Used at registration (a failure becomes HTTP 400) and again before an instance
imports the code, so both report the same one-sentence error.
"""

from __future__ import annotations

import ast
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from fnworker.runtimes.instance.package_layout import (
    ClassNameRef,
    PackageError,
    PackageKind,
    PackageLayout,
    find_module,
    layout_of,
    package_kind,
    parse_class_name,
    py_module_matches,
)
from fnworker.runtimes.instance.package_limits import (
    check_listing,
    check_module_size,
    read_member_bounded,
    too_many_files,
)
from fnworker.scheduler.model.instances import PackageLimits

DEFAULT_PACKAGE_LIMITS = PackageLimits()
ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
)
"""What reading a damaged zip raises (RuntimeError: an encrypted entry)."""


class EntryTarget(msgspec.Struct, frozen=True, kw_only=True):
    """What a ``className`` resolves to inside a package.

    ``module`` is the entry module's dotted name and ``member`` the archive path of
    its file (None for a .py package). ``attribute`` is None when the className
    names a module whose ``process(input)`` is the function (Pulsar's pure form).
    """

    kind: PackageKind
    layout: PackageLayout
    module: str
    member: str | None
    attribute: str | None


class SourceFinder:
    """Finds and reads module sources inside one package file, within its limits."""

    def __init__(self, path: Path, file_name: str | None, limits: PackageLimits) -> None:
        self.path = path
        self.file_name = file_name
        self.limits = limits
        with archive_errors(self.display):
            self.kind = package_kind(path, file_name)
        self.names: set[str] = set()
        self.layout = layout_of(self.kind, self.names)
        if self.kind != "py":
            with archive_errors(self.display), zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
                check_listing(infos, limits, self.display)
                self.names = {info.filename for info in infos}
                self.layout = layout_of(self.kind, self.names)
                check_dependency_wheels(archive, self.layout, limits, self.display)

    @property
    def display(self) -> str:
        """The package's name as users know it."""
        return self.file_name or self.path.name

    def find(self, module: str) -> str | None:
        """The member holding ``module`` (``""`` stands for the single .py file)."""
        if self.kind == "py":
            return "" if py_module_matches(module, self.file_name) else None
        return find_module(self.layout, self.names, module)

    def parse(self, member: str) -> ast.Module:
        """Parse one module; a syntax error becomes a PackageError naming file and line."""
        shown = member or self.display
        if self.kind == "py":
            check_module_size(self.path.stat().st_size, shown, self.limits)
            source = self.path.read_bytes()
        else:
            with archive_errors(self.display), zipfile.ZipFile(self.path) as archive:
                source = read_member_bounded(archive, member, self.limits)
        try:
            return ast.parse(source, filename=shown)
        except SyntaxError as error:
            raise PackageError(
                f"{shown} in package '{self.display}' has a syntax error on line "
                f"{error.lineno}: {error.msg}"
            ) from None
        except ValueError as error:
            raise PackageError(
                f"{shown} in package '{self.display}' is not Python source: {error}"
            ) from None


@contextmanager
def archive_errors(display: str) -> Iterator[None]:
    """A damaged archive (bad CRC, corrupt data, unsupported method or encryption) as a
    PackageError, not an unexpected exception."""
    try:
        yield
    except ARCHIVE_ERRORS as error:
        raise PackageError(f"package '{display}' is not a readable zip archive: {error}") from None


def check_package(
    path: Path,
    class_name: str,
    file_name: str | None = None,
    limits: PackageLimits = DEFAULT_PACKAGE_LIMITS,
) -> None:
    """Raise PackageError (one sentence) unless the package defines ``class_name`` and
    stays within ``limits``.

    ``file_name`` is the package's original name when ``path`` is a temporary file
    (it decides whether a .py file can be the module the className names).
    """
    resolve_target(path, class_name, file_name, limits)


def resolve_target(
    path: Path,
    class_name: str,
    file_name: str | None = None,
    limits: PackageLimits = DEFAULT_PACKAGE_LIMITS,
) -> EntryTarget:
    """Find the module and attribute ``class_name`` names, checking both exist."""
    if not path.is_file():
        raise PackageError(f"package file '{path}' does not exist")
    ref = parse_class_name(class_name)
    finder = SourceFinder(path, file_name, limits)
    if ref.module:
        return resolve_dotted(finder, ref)
    return resolve_module_form(finder, ref.attribute)


def resolve_dotted(finder: SourceFinder, ref: ClassNameRef) -> EntryTarget:
    """``a.b.C``: attribute C of module a.b, or else module a.b.C in pure form."""
    member = finder.find(ref.module)
    if member is None:
        if finder.find(ref.text) is not None:
            return resolve_module_form(finder, ref.text)
        raise PackageError(missing_module(finder, ref.module))
    tree = finder.parse(member)
    if defines(tree, ref.attribute):
        return target(finder, ref.module, member, ref.attribute)
    if finder.find(ref.text) is not None:
        return resolve_module_form(finder, ref.text)
    raise PackageError(
        f"'{ref.attribute}' is not defined in module '{ref.module}' of package "
        f"'{finder.display}'; className '{ref.text}' expects a class or function of that name"
    )


def resolve_module_form(finder: SourceFinder, module: str) -> EntryTarget:
    """A className naming a module: it must define ``process``."""
    member = finder.find(module)
    if member is None:
        raise PackageError(missing_module(finder, module))
    if not defines(finder.parse(member), "process"):
        raise PackageError(
            f"module '{module}' of package '{finder.display}' defines no 'process' function; "
            "a className naming a module needs one"
        )
    return target(finder, module, member, None)


def target(finder: SourceFinder, module: str, member: str, attribute: str | None) -> EntryTarget:
    """Assemble the resolution result."""
    return EntryTarget(
        kind=finder.kind,
        layout=finder.layout,
        module=module,
        member=member or None,
        attribute=attribute,
    )


def missing_module(finder: SourceFinder, module: str) -> str:
    """The sentence for a module the package does not contain."""
    if finder.kind == "py":
        return (
            f"module '{module}' is not in package '{finder.display}', a single-file package "
            f"that only holds module '{Path(finder.display).stem}'"
        )
    roots = ", ".join(f"{root}/" if root else "the top level" for root in finder.layout.roots)
    return f"module '{module}' is not in package '{finder.display}' (looked in {roots})"


def check_dependency_wheels(
    archive: zipfile.ZipFile, layout: PackageLayout, limits: PackageLimits, display: str
) -> None:
    """The wheels in a zip's deps folder unpack at instance start too: their listings
    count against what is left of the package's limits."""
    if layout.deps is None:
        return
    outer = archive.infolist()
    files = len(outer)
    unpacked = sum(info.file_size for info in outer)
    for info in outer:
        if not (info.filename.startswith(f"{layout.deps}/") and info.filename.endswith(".whl")):
            continue
        try:
            with archive.open(info) as stream, zipfile.ZipFile(stream) as wheel:
                inner = wheel.infolist()
        except ARCHIVE_ERRORS as error:
            raise PackageError(
                f"dependency wheel '{info.filename}' of package '{display}' is not a valid "
                f"wheel: {error}"
            ) from None
        files += len(inner)
        unpacked += sum(entry.file_size for entry in inner)
        check_totals(files, unpacked, limits, display)


def check_totals(files: int, unpacked: int, limits: PackageLimits, display: str) -> None:
    """Refuse a package whose entries, its dependency wheels' included, are over a limit."""
    if files > limits.max_files:
        raise PackageError(too_many_files(display, files, limits))
    if unpacked > limits.max_unpacked_bytes:
        raise PackageError(
            f"package '{display}' unpacks to {unpacked} bytes with its dependency wheels, "
            f"above maxPackageUnpackedBytes {limits.max_unpacked_bytes}; expected a package of "
            f"at most {limits.max_unpacked_bytes} bytes unpacked"
        )


def defines(tree: ast.Module, name: str) -> bool:
    """True if module-level code binds ``name`` (or a ``*`` import makes it unknowable)."""
    found = False

    def visit(node: ast.AST) -> None:
        nonlocal found
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found = found or node.name == name
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found = found or any(binds(alias, name) for alias in node.names)
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found = found or node.id == name
        if isinstance(node, ast.Lambda):
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    for statement in tree.body:
        visit(statement)
    return found


def binds(alias: ast.alias, name: str) -> bool:
    """Whether one import alias binds ``name`` at module level."""
    if alias.name == "*":
        return True
    bound = alias.asname or alias.name.split(".")[0]
    return bound == name
