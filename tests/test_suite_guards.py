"""The suite itself: real-data tests cannot skip silently in CI, and they are marked exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _pytest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_required_data_missing_fails_naming_the_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_fx"
    env = {**os.environ, "FOREX_DIFFUSION_SHARED_DATA": str(missing)}
    env["FOREX_DIFFUSION_REQUIRE_DATA"] = "1"
    out = _pytest("tests/test_timeframes.py", env=env)
    assert out.returncode != 0
    assert str(missing) in out.stdout + out.stderr
    env["FOREX_DIFFUSION_REQUIRE_DATA"] = "0"  # locally: real-data tests skip, others run
    out = _pytest("tests/test_store.py", "-k", "real_eurusd", env=env)
    assert out.returncode == 0 and "1 skipped" in out.stdout, out.stdout


def test_realdata_marker_is_exactly_the_fx_dir_tests(request: pytest.FixtureRequest) -> None:
    items = request.session.items
    for item in items:
        uses = "fx_dir" in getattr(item, "fixturenames", ())
        marked = item.get_closest_marker("realdata") is not None
        assert uses == marked, item.nodeid
    assert any(i.get_closest_marker("realdata") for i in items) or len(items) < 50
