"""The quality gates as tests: ruff lint, ruff format, mypy --strict, the import contracts.

Each test runs one pinned tool (pyproject's [test] extra) from this interpreter's
folder over the whole tree and shows the tool's own output when it fails, so
`python3 dev.py test` (and so CI) fails on a lint error, an unformatted file, a type
error or an import that breaks a layer contract. docs/quality-gates.md says what each
gate checks and how to run one by hand. Runs the tools as subprocesses; no network.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(sys.executable).parent
PACKAGES = ("scheduler", "runtimes", "coordination")
# mypy's cache and the package tree live in the ignored .mypy_cache, at a fixed path,
# so a second run reuses the cache (a cold mypy run takes most of this module's time).
CACHE = ROOT / ".mypy_cache"
TREE = CACHE / "package-tree"

pytestmark = [pytest.mark.timeout(300)]


def package_tree() -> Path:
    """A folder where ``fnworker.<name>`` is each code folder, for mypy and import-linter.

    setup.py installs scheduler/, runtimes/ and coordination/ as fnworker.scheduler,
    fnworker.runtimes and fnworker.coordination through package_dir, which neither
    tool can follow; symlinks make the same layout on disk. ``fnworker`` stays a
    namespace package (no __init__.py), as installed, so import-linter accepts the
    three as root packages.
    """
    namespace = TREE / "fnworker"
    namespace.mkdir(parents=True, exist_ok=True)
    for name in PACKAGES:
        link = namespace / name
        if not link.is_symlink():
            try:
                link.symlink_to(ROOT / name, target_is_directory=True)
            except FileExistsError:  # another run made it a moment ago
                pass
    return TREE


def run_tool(name: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run one tool from the test environment in the repository; fail with its output."""
    tool = TOOLS / name
    if not tool.exists():
        pytest.fail(
            f"{name} is not installed in {TOOLS}; install the test extra: pip install -e .[test]"
        )
    command = [str(tool), *args]
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    if result.returncode != 0:
        output = result.stdout + result.stderr
        # mypy names files by their path in the package tree: show the repository's.
        output = output.replace(f"{TREE.relative_to(ROOT)}/fnworker/", "")
        pytest.fail(
            f"{' '.join([name, *args])} failed (exit {result.returncode}):\n{output}",
            pytrace=False,
        )


def with_python_path(folder: Path) -> dict[str, str]:
    """This process's environment with ``folder`` first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))
    return env


def test_ruff_check_passes() -> None:
    """The rule set in [tool.ruff.lint] finds nothing anywhere in the tree."""
    run_tool("ruff", "check", "--output-format", "concise", ".")


def test_ruff_format_leaves_every_file_unchanged() -> None:
    """Every Python file is already in ruff's format (examples/ excepted, see pyproject)."""
    run_tool("ruff", "format", "--check", "--diff", ".")


def test_mypy_strict_passes() -> None:
    """mypy --strict finds no error in fnworker.scheduler, .runtimes and .coordination."""
    tree = package_tree()
    env = with_python_path(tree)
    env["MYPYPATH"] = str(tree)
    run_tool(
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        str(CACHE),
        "--strict",
        "-p",
        "fnworker",
        env=env,
    )


def test_import_contracts_are_kept() -> None:
    """Every contract in [tool.importlinter] holds (the pure core imports no I/O library, ...)."""
    run_tool("lint-imports", "--no-cache", "--no-logo", env=with_python_path(package_tree()))
