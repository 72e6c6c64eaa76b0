"""The quality gates as tests: ruff lint, ruff format, mypy --strict, the import contracts.

Each test runs one pinned tool (pyproject's [test] extra) from this interpreter's
folder over the whole tree and shows the tool's own output when it fails, so
`python3 dev.py test` (and so CI) fails on a lint error, an unformatted file, a type
error or an import that breaks a layer contract. docs/quality-gates.md says what each
gate checks and how to run one by hand. Runs the tools as subprocesses; no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = Path(sys.executable).parent
# mypy's cache lives in the ignored .mypy_cache, at a fixed path, so a second run
# reuses it (a cold mypy run takes most of this module's time).
CACHE = ROOT / ".mypy_cache"

pytestmark = [pytest.mark.timeout(300)]


def run_tool(name: str, *args: str) -> None:
    """Run one tool from the test environment in the repository; fail with its output."""
    tool = TOOLS / name
    if not tool.exists():
        pytest.fail(
            f"{name} is not installed in {TOOLS}; install the test extra: pip install -e .[test]"
        )
    command = [str(tool), *args]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    if result.returncode != 0:
        output = result.stdout + result.stderr
        pytest.fail(
            f"{' '.join([name, *args])} failed (exit {result.returncode}):\n{output}",
            pytrace=False,
        )


def test_ruff_check_passes() -> None:
    """The rule set in [tool.ruff.lint] finds nothing anywhere in the tree."""
    run_tool("ruff", "check", "--output-format", "concise", ".")


def test_ruff_format_leaves_every_file_unchanged() -> None:
    """Every Python file is already in ruff's format (examples/ excepted, see pyproject)."""
    run_tool("ruff", "format", "--check", "--diff", ".")


def test_mypy_strict_passes() -> None:
    """mypy --strict finds no error anywhere in the fnworker package."""
    run_tool("mypy", "--cache-dir", str(CACHE), "--strict", "-p", "fnworker")


def test_import_contracts_are_kept() -> None:
    """Every contract in [tool.importlinter] holds (the pure core imports no I/O library, ...)."""
    run_tool("lint-imports", "--no-cache", "--no-logo")


def test_layer_contract_fails_when_runtimes_import_the_api(tmp_path: Path) -> None:
    """The layers contract is not vacuous: a copy of the tree where a runtime module
    imports the REST API layer is refused, naming that import."""
    shutil.copytree(
        ROOT / "fnworker", tmp_path / "fnworker", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    broken = tmp_path / "fnworker" / "runtimes" / "thread.py"
    broken.write_text(broken.read_text() + "\nimport fnworker.scheduler.api.app  # noqa\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run(
        [str(TOOLS / "lint-imports"), "--no-cache", "--no-logo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode != 0
    assert "fnworker.runtimes is not allowed to import fnworker.scheduler.api" in result.stdout
    assert "fnworker.runtimes.thread -> fnworker.scheduler.api.app" in result.stdout
