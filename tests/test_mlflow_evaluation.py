"""The evaluation's first table, report and per-horizon metrics mirrored into MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.config.sssd_config import (
    DEFAULT_CONFIG_PATH,
    EvaluationConfig,
    load_sssd_config,
)
from forex_diffusion.evaluation.mlflow_report import log_evaluation
from forex_diffusion.evaluation.report import first_table_text, write_report
from forex_diffusion.evaluation.summary import summarize_forecasts
from forex_diffusion.models.distribution import ForecastDistribution

mlflow = pytest.importorskip("mlflow")
H = (5, 60)


def _summary():
    rng = np.random.default_rng(0)
    times = pd.date_range("2021-03-01 01:00", periods=300, freq="h", tz="UTC")
    y = rng.normal(0, 1e-4, (300, 2))
    model = ForecastDistribution.from_samples("m1", times, H, rng.normal(0, 1e-4, (300, 2, 64)))
    base = ForecastDistribution.gaussian(
        "ewma", times, H, np.zeros((300, 2)), np.full((300, 2), 2e-4)
    )
    return summarize_forecasts(
        asset="EURUSD", forecasts={"m1": model, "ewma": base}, baselines=["ewma"], targets=y,
        last_close=np.ones(300), pip_size=1e-4, cfg=EvaluationConfig(stride=12), model_name="m1",
        start="2021-03-01", end="2021-03-13",
    )  # fmt: skip


@pytest.mark.parametrize("with_training_run", [False, True])
def test_first_table_lands_in_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_training_run: bool
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    cfg = load_sssd_config(DEFAULT_CONFIG_PATH, overrides=[f"training.mlflow_uri={uri}"])
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    trained = None
    if with_training_run:  # what a training run with MLflow on leaves behind
        exp = client.create_experiment("forex_diffusion")
        trained = client.create_run(exp, tags={"asset": "EURUSD", "model_name": "m1"}).info.run_id
    s = _summary()
    files = write_report(tmp_path / "report", s, None)
    run_id = log_evaluation(cfg, s, files)
    assert run_id is not None and (trained is None or run_id == trained)
    folder = "evaluation/2021-03-01_2021-03-13"
    local = client.download_artifacts(run_id, f"{folder}/first_table.md", str(tmp_path / "dl"))
    assert Path(local).read_text() == first_table_text(s)
    names = {a.path for a in client.list_artifacts(run_id, folder)}
    assert {f"{folder}/report.md", f"{folder}/metrics.json"} <= names
    metrics = client.get_run(run_id).data.metrics
    assert metrics["eval_crps_bp_60min"] == pytest.approx(s.get("m1", 60).crps * 1e4)
    assert metrics["eval_coverage90_5min"] == pytest.approx(s.get("m1", 5).coverage["0.9"])


def test_nothing_is_logged_without_tracking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_sssd_config(DEFAULT_CONFIG_PATH)
    s = _summary()
    assert log_evaluation(cfg, s, write_report(tmp_path, s, None)) is None
