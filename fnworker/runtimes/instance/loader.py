"""Loads the user code of one instance start: unpacks a .zip or .whl next to the
package, puts its source roots and dependency wheels on ``sys.path``, imports the
entry module under a name unique to this start, and returns the callable. Does file
I/O and executes user code (the entry module's top level and the class's
constructor).

Sharing one interpreter (thread runtime) has limits, written down in
docs/instance-host.md: the entry module is private to the instance start, so an
update with new code takes effect in the same process, but helper modules are
ordinary ``sys.modules`` entries shared by every function in the worker. Stale
helpers of a stopped start are forgotten, yet two live functions shipping a helper
of the same name see whichever was imported first. The process runtime isolates
fully.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pulsar import Function

from fnworker.runtimes.instance.package_check import (
    ARCHIVE_ERRORS,
    DEFAULT_PACKAGE_LIMITS,
    EntryTarget,
    check_package,
    resolve_target,
)
from fnworker.runtimes.instance.package_layout import PackageError
from fnworker.runtimes.instance.package_unpack import DEPS_SITE, extract_package, shared_tree_of
from fnworker.scheduler.model.instances import PackageLimits

__all__ = [
    "LoadedFunction",
    "PackageError",
    "PackageLimits",
    "check_package",
    "load_function",
]

_IMPORT_LOCK = threading.RLock()
_MANAGED_DIRS: set[str] = set()


class LoadedFunction:
    """User code ready to call: ``handler(input, context)`` or ``handler(input)``."""

    def __init__(
        self,
        *,
        module: ModuleType,
        target: EntryTarget,
        paths: tuple[str, ...],
        unpack_dir: Path | None,
        owns_unpack_dir: bool = True,
    ) -> None:
        self.module = module
        self.module_name = target.module
        self.target = target
        self.paths = paths
        self.unpack_dir = unpack_dir
        self.owns_unpack_dir = owns_unpack_dir
        self.handler: Callable[..., Any] = lambda value: None
        self.takes_context = False

    def unload(self) -> None:
        """Forget this start's modules and paths and delete what it unpacked itself (a
        shared tree belongs to the instance's folder and stays for a restart)."""
        release(self.module.__name__, self.paths, self.unpack_dir, self.owns_unpack_dir)


def load_function(
    package_path: Path,
    class_name: str,
    tag: str,
    limits: PackageLimits = DEFAULT_PACKAGE_LIMITS,
) -> LoadedFunction:
    """Load ``class_name`` from the package; PackageError (one sentence) if it cannot,
    including a package over ``limits`` (checked again here: the record may have been
    stored by an older version or by a worker with larger limits)."""
    target = resolve_target(package_path, class_name, package_path.name, limits)
    unpack_dir, owned = unpacked_files(package_path, target, limits)
    paths = search_paths(unpack_dir, target)
    entry_file = package_path if unpack_dir is None else unpack_dir / str(target.member)
    with _IMPORT_LOCK:
        forget_stale_modules(paths)
        add_paths(paths)
        try:
            module = import_entry(entry_file, target.module, tag, package_path.name)
        except BaseException:
            release(unique_module_name(target.module, tag), paths, unpack_dir, owned)
            raise
    loaded = LoadedFunction(
        module=module, target=target, paths=paths, unpack_dir=unpack_dir, owns_unpack_dir=owned
    )
    try:
        loaded.handler, loaded.takes_context = handler_of(module, target, class_name)
    except BaseException:
        loaded.unload()
        raise
    return loaded


def unpacked_files(
    package_path: Path, target: EntryTarget, limits: PackageLimits
) -> tuple[Path | None, bool]:
    """The folder holding the package's files (None for a .py package), and whether
    this start unpacked it (else it is the shared tree the worker prepared)."""
    if target.kind == "py":
        return None, False
    shared = shared_tree_of(package_path)
    if shared.is_dir():
        with _IMPORT_LOCK:
            _MANAGED_DIRS.add(str(shared))
        return shared, False
    return unpack_package(package_path, target, limits), True


def release(
    entry_name: str, paths: tuple[str, ...], unpack_dir: Path | None, owned: bool = True
) -> None:
    """Undo a load: drop its modules and ``sys.path`` entries, delete unpacked files
    this start owns."""
    with _IMPORT_LOCK:
        forget_modules_under(entry_name, unpack_dir)
        for path in paths:
            while path in sys.path:
                sys.path.remove(path)
        if unpack_dir is not None:
            _MANAGED_DIRS.discard(str(unpack_dir))
    if unpack_dir is not None and owned:
        shutil.rmtree(unpack_dir, ignore_errors=True)


def unpack_package(
    package_path: Path, target: EntryTarget, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS
) -> Path:
    """Extract the archive into a fresh folder next to it, and its dependency wheels,
    counting the bytes and files written against one budget (a lying header stops at
    the limit, and the partly unpacked folder is removed)."""
    unpack_dir = Path(tempfile.mkdtemp(prefix=f".{package_path.name}.", dir=package_path.parent))
    _MANAGED_DIRS.add(str(unpack_dir))
    try:
        extract_package(package_path, unpack_dir, target.layout, limits)
    except (*ARCHIVE_ERRORS, PackageError) as error:
        shutil.rmtree(unpack_dir, ignore_errors=True)
        _MANAGED_DIRS.discard(str(unpack_dir))
        if isinstance(error, PackageError):
            raise
        raise PackageError(
            f"package '{package_path.name}' could not be unpacked: {error}"
        ) from None
    return unpack_dir


def search_paths(unpack_dir: Path | None, target: EntryTarget) -> tuple[str, ...]:
    """The folders this start adds to ``sys.path``: source roots, then dependencies."""
    if unpack_dir is None:
        return ()
    roots = [unpack_dir / root if root else unpack_dir for root in target.layout.roots]
    if (unpack_dir / DEPS_SITE).is_dir():
        roots.append(unpack_dir / DEPS_SITE)
    return tuple(str(root) for root in roots if root.is_dir())


def add_paths(paths: tuple[str, ...]) -> None:
    """Put ``paths`` after the worker's own entries but before older unpacked packages.

    The worker's and installed modules are never shadowed; among user packages
    the newest start wins, so an update finds its own helper modules.
    """
    managed = [i for i, entry in enumerate(sys.path) if under_managed(entry)]
    position = managed[0] if managed else len(sys.path)
    sys.path[position:position] = [path for path in paths if path not in sys.path]


def under_managed(entry: str) -> bool:
    """True for a ``sys.path`` entry inside a folder this loader unpacked."""
    return any(entry == folder or entry.startswith(folder + "/") for folder in _MANAGED_DIRS)


def forget_stale_modules(paths: tuple[str, ...]) -> None:
    """Drop cached modules this package provides if an earlier start loaded them.

    Only modules loaded from folders this loader unpacked are dropped; the
    worker's own and installed modules are never touched.
    """
    provided = {name for path in paths for name in top_level_names(Path(path))}
    stale = [
        name
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in provided and loaded_from_managed(module, paths)
    ]
    for name in stale:
        sys.modules.pop(name, None)


def top_level_names(folder: Path) -> set[str]:
    """Module and package names importable from one folder."""
    names = set()
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name.isidentifier():
            names.add(entry.name)
        elif entry.suffix in (".py", ".so", ".pyd"):
            names.add(entry.name.split(".")[0])
    return names


def loaded_from_managed(module: ModuleType | None, current: tuple[str, ...]) -> bool:
    """True for a module file under a folder we unpacked, other than the current ones."""
    file = getattr(module, "__file__", None) or ""
    owners = [folder for folder in _MANAGED_DIRS if file.startswith(folder + "/")]
    return bool(owners) and not any(file.startswith(path + "/") for path in current)


def forget_modules_under(entry_name: str, unpack_dir: Path | None) -> None:
    """Remove the entry module, its submodules and modules loaded from ``unpack_dir``."""
    folder = f"{unpack_dir}/" if unpack_dir is not None else None
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        mine = name == entry_name or name.startswith(entry_name + ".")
        if mine or (folder is not None and file.startswith(folder)):
            sys.modules.pop(name, None)


def unique_module_name(module: str, tag: str) -> str:
    """``a.b`` loaded for start ``tag`` becomes ``a.b__fnw_<tag>`` (a sibling of a.b)."""
    safe = re.sub(r"\W", "_", tag)
    return f"{module}__fnw_{safe}"


def import_entry(entry_file: Path, module: str, tag: str, package_name: str) -> ModuleType:
    """Execute the entry module from its file under a name unique to this start."""
    parent = module.rpartition(".")[0]
    if parent:
        import_parent(parent, package_name)
    name = unique_module_name(module, tag)
    is_package = entry_file.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name,
        entry_file,
        submodule_search_locations=[str(entry_file.parent)] if is_package else None,
    )
    if spec is None or spec.loader is None:
        raise PackageError(f"module '{module}' of package '{package_name}' cannot be imported")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException as error:
        sys.modules.pop(name, None)
        raise PackageError(
            f"importing module '{module}' of package '{package_name}' raised "
            f"{type(error).__name__}: {error}"
        ) from error
    return loaded


def import_parent(parent: str, package_name: str) -> None:
    """Import the packages enclosing the entry module the ordinary way."""
    try:
        importlib.import_module(parent)
    except BaseException as error:
        raise PackageError(
            f"importing package '{parent}' of '{package_name}' raised "
            f"{type(error).__name__}: {error}"
        ) from error


def handler_of(
    module: ModuleType, target: EntryTarget, class_name: str
) -> tuple[Callable[..., Any], bool]:
    """The callable to run per message and whether it takes the context."""
    if target.attribute is None:
        return module_process(module, class_name), False
    try:
        found = getattr(module, target.attribute)
    except AttributeError:
        raise PackageError(f"'{class_name}' is not defined once its module ran") from None
    if inspect.ismodule(found):
        return module_process(found, class_name), False
    if inspect.isclass(found):
        return class_process(found, class_name), True
    if isinstance(found, Function):
        return found.process, True
    if callable(found):
        return found, False
    raise PackageError(
        f"'{class_name}' is a {type(found).__name__}, not a class or function to call per message"
    )


def module_process(module: ModuleType, class_name: str) -> Callable[..., Any]:
    """Pulsar's pure form: a module whose ``process(input)`` handles each message."""
    process: Callable[..., Any] | None = getattr(module, "process", None)
    if not callable(process):
        raise PackageError(f"module '{class_name}' has no callable 'process'")
    return process


def class_process(kind: type, class_name: str) -> Callable[..., Any]:
    """Create the user's class with no arguments and return its ``process`` method."""
    try:
        instance = kind()
    except BaseException as error:
        raise PackageError(
            f"creating {class_name}() raised {type(error).__name__}: {error}"
        ) from error
    process: Callable[..., Any] | None = getattr(instance, "process", None)
    if not callable(process):
        raise PackageError(f"class '{class_name}' has no process(input, context) method")
    return process
