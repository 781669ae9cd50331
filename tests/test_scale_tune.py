"""``tune`` on a local Ray: 4 tiny trials proposed by Optuna, ASHA stopping at least one on
the validation CRPS, every trial a model and a run in the registry, the best configuration
exported as a YAML the strict configuration loads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, load_sssd_config
from forex_diffusion.registry import Registry
from scale_utils import cli_overrides, scale_overrides, synthetic_store

pytest.importorskip("ray")
pytest.importorskip("optuna")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SRC = Path(__file__).resolve().parents[1] / "src"
EPOCHS = 4


def test_tune_four_trials_asha_registry_export(tmp_path: Path) -> None:
    synthetic_store(tmp_path, ["AAAUSD"])
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    space = tmp_path / "space.yaml"
    space.write_text(
        "training.learning_rate: {type: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
        "model.encoder.dropout: {type: uniform, low: 0.0, high: 0.3}\n"
    )
    best_yaml = tmp_path / "best.yaml"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", TORCH_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    command = [
        sys.executable,
        "-m",
        "forex_diffusion.cli.main",
        "tune",
        "--asset",
        "AAAUSD",
        "--trials",
        "4",
        # one trial at a time with a seeded sampler: the same proposals and the same ASHA
        # decisions on every run (each trial trains deterministically on CPU)
        "--concurrency",
        "1",
        "--seed",
        "0",
        "--space",
        str(space),
        "--preset",
        "cpu_small",
        "--db-url",
        url,
        "--export",
        str(best_yaml),
        *cli_overrides(scale_overrides(tmp_path, f"training.epochs={EPOCHS}")),
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=1500
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout)
    trials = summary["trials"]
    assert len(trials) == 4
    statuses = [t["status"] for t in trials]
    assert "failed" not in statuses
    # ASHA (grace 1 epoch, reduction factor 2): sequential trials meet rungs at 1, 2 and 4
    # epochs that earlier trials filled, so the schedule allows stopping; it stopped some
    assert statuses.count("pruned") >= 1, trials
    assert all(t["epochs"] <= EPOCHS for t in trials)

    with Registry(url) as registry:
        models = registry.list_models("AAAUSD")
        assert sorted(m.model_name for m in models) == sorted(t["model_name"] for t in trials)
        for trial in trials:
            run = registry.get_run(trial["run_id"])
            assert run.model_name == trial["model_name"]
            expected = "interrupted" if trial["status"] == "pruned" else "completed"
            assert run.status == expected
            model = registry.get_model("AAAUSD", trial["model_name"])
            lr = trial["params"]["training.learning_rate"]
            assert model.training_config["learning_rate"] == pytest.approx(lr)

    best = summary["best"]
    assert best["val_crps"] == min(t["val_crps"] for t in trials)
    # off a terminal, the trials are one summary line on stderr naming the best so far
    assert re.search(
        rf"^tune {summary['study']}: trials: 4/4 done in [\d.]+ s; best val_crps "
        rf"{best['val_crps']:.6g} \(trial {best['trial_id']}\)$",
        done.stderr,
        re.MULTILINE,
    ), done.stderr[-4000:]
    exported = load_sssd_config(DEFAULT_CONFIG_PATH, asset_config=best_yaml)
    assert exported.model.name == best["model_name"]
    assert exported.training.learning_rate == pytest.approx(
        best["params"]["training.learning_rate"]
    )
    assert exported.model.encoder.dropout == pytest.approx(best["params"]["model.encoder.dropout"])
    assert exported.training.epochs == EPOCHS
