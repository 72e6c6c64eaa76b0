#!/usr/bin/env python3
"""Sets the project up in ./.venv and runs its two jobs; needs only Python 3.11+.

    python3 dev.py demo     # standalone worker + embedded broker + example function
    python3 dev.py test     # the whole test suite (what .ci/run calls)

Any further arguments are passed on: to `fnworker standalone` for `demo`, to
pytest for `test`. The virtual environment is created on first use and brought
up to date whenever pyproject.toml or this file is newer than it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".fnworker-installed"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_environment() -> None:
    """Create .venv and install the project (editable, with test extras) if stale."""
    if sys.version_info < (3, 11):
        sys.exit(f"fnworker needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    inputs = [ROOT / "pyproject.toml", Path(__file__)]
    if STAMP.exists() and all(STAMP.stat().st_mtime >= p.stat().st_mtime for p in inputs):
        return
    print("installing fnworker and its dependencies into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip", "setuptools>=77"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test]"], check=True, cwd=ROOT)
    STAMP.touch()


def run(argv: list[str]) -> int:
    """Run one job inside the environment and return its exit code."""
    job, rest = (argv[0], argv[1:]) if argv else ("", [])
    if job == "demo":
        command = [str(BIN / "fnworker"), "standalone", "--demo", *rest]
    elif job == "test":
        # Four test processes (pytest-xdist); a later -n in the arguments wins.
        command = [str(BIN / "python"), "-m", "pytest", "-n", "4", *rest]
    else:
        print(__doc__)
        return 2
    ensure_environment()
    child = subprocess.Popen(command, cwd=ROOT)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue  # Ctrl-C reaches the child too; it stops itself, we wait for it


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
