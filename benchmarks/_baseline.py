"""The baseline checkout for side-by-side benchmarks: a ``git worktree`` of the baseline commit.

The baseline commit is ``$FD_BENCH_BASELINE`` (any commit-ish) or, without it, the commit recorded
in ``benchmarks/BASELINE`` (the merge-base of the speed-up branch with main). The checkout lives at
``$FD_BENCH_BASELINE_DIR`` (default ``/tmp/fd_baseline``) and is reused when it is already at that
commit. Measurements run in a subprocess whose ``PYTHONPATH`` puts the checkout's ``src`` first,
so the same measurement script exercises either code base.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = Path("/tmp/fd_baseline")


def baseline_commit() -> str:
    """The full hash of the baseline commit."""
    ref = os.environ.get("FD_BENCH_BASELINE") or (REPO / "benchmarks" / "BASELINE").read_text()
    return _git("rev-parse", "--verify", ref.strip() + "^{commit}").strip()


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def ensure_worktree(commit: str) -> Path:
    """A detached worktree at ``commit`` (created, or moved there when it exists); its root."""
    where = Path(os.environ.get("FD_BENCH_BASELINE_DIR", DEFAULT_DIR))
    if (where / ".git").exists():
        try:
            head = _git("rev-parse", "HEAD", cwd=where).strip()
        except subprocess.CalledProcessError as error:
            raise RuntimeError(
                f"{where} exists but is not a usable git worktree ({error.stderr.strip()}); "
                "remove it or set FD_BENCH_BASELINE_DIR"
            ) from error
        if head != commit:
            _git("checkout", "--detach", "--force", commit, cwd=where)
        return where
    _git("worktree", "prune")
    _git("worktree", "add", "--detach", "--force", str(where), commit)
    return where


def run_case(src_root: Path, args: list[str], threads: int) -> dict[str, Any]:
    """Run ``benchmarks/speed_cases.py`` with ``src_root/src`` first on PYTHONPATH; its JSON."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src_root / "src"), str(REPO / "benchmarks")]),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }
    cmd = [sys.executable, str(REPO / "benchmarks" / "speed_cases.py"), "--threads", str(threads)]
    out = subprocess.run(
        [*cmd, *args], env=env, capture_output=True, text=True, cwd=src_root, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed under {src_root}:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
