"""``train-many`` on a local Ray (num_cpus=2) against a real PostgreSQL registry: two assets
train to completed runs with best checkpoints; a job whose worker is killed mid-run is
interrupted, and ``--resume`` finishes it without touching the other."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forex_diffusion.errors import NotFoundError
from forex_diffusion.registry import Registry
from scale_utils import cli_overrides, scale_overrides, synthetic_store

pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.postgres]

SRC = Path(__file__).resolve().parents[1] / "src"
ASSETS = ["AAAUSD", "BBBUSD"]
EPOCHS = 6


def _command(root: Path, url: str, *extra: str) -> list[str]:
    overrides = scale_overrides(
        root,
        f"training.epochs={EPOCHS}",
        "training.early_stopping={patience: 50, min_delta: 0.0}",
    )
    return [
        sys.executable,
        "-m",
        "forex_diffusion.cli.main",
        "train-many",
        "--assets",
        *ASSETS,
        "--preset",
        "cpu_small",
        "--cpus-per-job",
        "1",
        "--db-url",
        url,
        *cli_overrides(overrides),
        *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", TORCH_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    return env


def _running_with_checkpoint(registry: Registry, asset: str) -> int | None:
    """pid of the asset's running run once it has written a checkpoint, else None."""
    try:
        runs = registry.list_runs(asset=asset, status="running")
        checkpoints = registry.list_checkpoints(asset)
    except NotFoundError:
        return None
    if runs and checkpoints and runs[0].pid is not None:
        return runs[0].pid
    return None


def _outcomes(stdout: str) -> dict[str, dict[str, object]]:
    data = json.loads(stdout)
    return {str(o["key"]).split("/")[0]: o for o in data}


def test_train_many_kill_and_resume(tmp_path: Path, postgres_server: object) -> None:
    synthetic_store(tmp_path, ASSETS)
    url = postgres_server.create_database()  # type: ignore[attr-defined]
    first = subprocess.Popen(
        _command(tmp_path, url),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    killed = None
    deadline = time.monotonic() + 600
    with Registry(url) as registry:
        while killed is None and first.poll() is None and time.monotonic() < deadline:
            killed = _running_with_checkpoint(registry, "BBBUSD")
            time.sleep(0.2)
    assert killed is not None, "BBBUSD never reached its first checkpoint while running"
    os.kill(killed, signal.SIGKILL)  # the Ray worker training BBBUSD dies
    out, err = first.communicate(timeout=600)
    assert first.returncode == 1, err[-3000:]
    outcomes = _outcomes(out)
    assert outcomes["AAAUSD"]["status"] == "completed"
    assert outcomes["BBBUSD"]["status"] == "interrupted"
    assert "worker lost" in str(outcomes["BBBUSD"]["error"])

    with Registry(url) as registry:
        (a_run,) = registry.list_runs(asset="AAAUSD")
        (b_run,) = registry.list_runs(asset="BBBUSD")
        assert (a_run.status, b_run.status) == ("completed", "interrupted")
        a_best = Path(registry.best_checkpoint("AAAUSD").path)
        a_mtime = a_best.stat().st_mtime_ns

    second = subprocess.run(
        _command(tmp_path, url, "--resume"),
        env=_env(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    outcomes = _outcomes(second.stdout)
    assert outcomes["AAAUSD"]["status"] == "skipped"
    assert outcomes["BBBUSD"]["status"] == "completed"
    assert outcomes["BBBUSD"]["epochs_completed"] == EPOCHS

    with Registry(url) as registry:
        assert [r.id for r in registry.list_runs(asset="AAAUSD")] == [a_run.id]
        b_runs = registry.list_runs(asset="BBBUSD")  # newest first
        assert [r.status for r in b_runs] == ["completed", "interrupted"]
        assert b_runs[0].epochs == EPOCHS
        completed = registry.list_runs(status="completed")
        assert sorted(r.asset for r in completed) == ASSETS
        for asset in ASSETS:
            best = registry.best_checkpoint(asset)
            assert best.is_best and Path(best.path).is_file()
    assert a_best.stat().st_mtime_ns == a_mtime  # the completed job was left alone
