"""Which modules a ``forex-diffusion`` command line imports, run in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_PROBE = """
import json, sys
from forex_diffusion.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
print("\\nMODULES=" + json.dumps(sorted(sys.modules)))
"""


def modules_after(*args: str, cwd: Path | None = None) -> tuple[set[str], str]:
    """(every module imported, packages and submodules, the command's stdout) of
    ``forex-diffusion ARGS``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=cwd,
    )
    head, _, tail = done.stdout.rpartition("MODULES=")
    return set(json.loads(tail)), head
