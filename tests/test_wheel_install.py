"""The built wheel works on its own: installed into a fresh venv, run from a folder outside the
repository, it finds its packaged config and runs a tiny data → train → predict chain.

The fresh venv reuses the already-installed third-party dependencies (a ``.pth`` file naming
this interpreter's site-packages, added only after the wheel is installed; a plain path line
does not run the ``.pth`` files there, so the editable install stays inactive); forex_diffusion
itself comes only from the wheel, which the test checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from training_utils import TINY

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900
PIP = (sys.executable, "-m", "pip")


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _json_tail(text: str) -> dict[str, object]:
    """The indented JSON object a command printed last (after any log lines)."""
    lines = text.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    parsed = json.loads("\n".join(lines[start:]))
    assert isinstance(parsed, dict)
    return parsed


def _clean_env() -> dict[str, str]:
    """This environment without anything that could point at the source tree or a store."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONPATH" and not k.startswith("FOREX_DIFFUSION_")
    }
    env.update(OMP_NUM_THREADS="1", TORCH_NUM_THREADS="1", PYTHONNOUSERSITE="1")
    return env


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this tree installed; returns its bin folder."""
    root = tmp_path_factory.mktemp("wheel")
    dist, venv = root / "dist", root / "venv"
    build = ("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q")
    _run(*PIP, *build, "-w", str(dist), str(REPO_ROOT), cwd=root)
    (wheel,) = dist.glob("forex_diffusion-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=root)
    python = str(venv / "bin" / "python")
    install = ("install", "--no-deps", "--no-index", "-q", str(wheel))
    _run(*PIP, "--python", python, *install, cwd=root, env=_clean_env())
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run(python, "-c", purelib, cwd=root, env=_clean_env()).strip())
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "project_dependencies.pth").write_text("\n".join(deps) + "\n")
    return venv / "bin"


@pytest.mark.slow
def test_wheel_ships_configs_and_runs_outside_the_repository(
    wheel_venv: Path, tmp_path: Path
) -> None:
    env = _clean_env()
    code = (
        "import forex_diffusion.config.sssd_config as c; print(c.__file__, c.DEFAULT_CONFIG_PATH)"
    )
    module, default_config = _run(
        str(wheel_venv / "python"), "-c", code, cwd=tmp_path, env=env
    ).split()
    venv_root = wheel_venv.parent
    assert Path(module).is_relative_to(venv_root), module  # the package is the wheel's copy
    assert Path(default_config).is_relative_to(venv_root) and Path(default_config).is_file()

    cli = str(wheel_venv / "forex-diffusion")
    shown = _run(cli, "config", "show", cwd=tmp_path, env=env)
    assert "data_dir: data" in shown and "name: sssd_" in shown
    preset = _run(cli, "config", "show", "--preset", "cpu_small", cwd=tmp_path, env=env)
    assert "name: sssd_cpu_small" in preset

    synth = ("--asset", "SYNTH", "--start", "2023-01-02", "--end", "2023-02-27")
    assert "SYNTHETIC" in _run(cli, "data", "synth", *synth, cwd=tmp_path, env=env)
    assert (tmp_path / "data" / "SYNTH" / "meta.json").is_file()  # ./data of the default config

    splits = [
        "data.splits.train.start=2023-01-02",
        "data.splits.train.end=2023-01-31",
        "data.splits.val.start=2023-02-02",
        "data.splits.val.end=2023-02-12",
        "data.splits.test.start=2023-02-14",
        "data.splits.test.end=2023-02-26",
        "training.epochs=1",
        "training.max_train_batches_per_epoch=2",
        "model.name=wheel_tiny",
    ]
    overrides = [arg for o in [*TINY, *splits] for arg in ("-o", o)]
    train = ("train", "--asset", "SYNTH", "--preset", "cpu_small", *overrides)
    assert _json_tail(_run(cli, *train, cwd=tmp_path, env=env))["status"] == "completed"

    predict = ("predict", "--asset", "SYNTH", "--model", "wheel_tiny", "--samples", "8")
    options = ("--format", "json", "-o", "inference.steps=2")
    forecast = _json_tail(_run(cli, *predict, *options, cwd=tmp_path, env=env))
    assert forecast["asset"] == "SYNTH" and forecast["model_name"] == "wheel_tiny"
    assert (tmp_path / "artifacts" / "registry.db").is_file()  # ./artifacts of the default config
