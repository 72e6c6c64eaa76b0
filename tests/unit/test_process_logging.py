"""An instance process's log file: Pulsar's single file per instance, rotated by
size, with print() output and raw writes to fds 1 and 2 following the rotation.
Runs the setup in a child process, since it takes over that process's stdout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import logging, os, sys
from pathlib import Path
from fnworker.runtimes.process.process_main import setup_logging
setup_logging(Path(sys.argv[1]), 400, 2)
for number in range(30):
    logging.getLogger("fnworker.function.x").info("line %d of the user's log", number)
print("printed by the function")
os.write(1, b"raw stdout after rotation\\n")
os.write(2, b"raw stderr after rotation\\n")
"""


def test_logs_rotate_by_size_and_stdout_follows(tmp_path: Path) -> None:
    log = tmp_path / "functions/public/default/f/f-0.log"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log)], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"" and done.stderr == b""
    files = sorted(p.name for p in log.parent.iterdir())
    assert files == ["f-0.log", "f-0.log.1", "f-0.log.2"]
    current = log.read_text()
    assert "printed by the function" in current and "fnworker.function.stdout" in current
    assert "raw stdout after rotation" in current and "raw stderr after rotation" in current
    recent = (log.parent / "f-0.log.1").read_text() + current
    assert "line 29 of the user's log" in recent and "line 0 " not in recent
    assert all(p.stat().st_size <= 600 for p in log.parent.iterdir())
