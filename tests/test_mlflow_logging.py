"""Optional MLflow tracking against a local file-based MLflow store: per-epoch metrics, the
configuration, and the best checkpoint as an artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, load_sssd_config
from forex_diffusion.registry import Registry
from forex_diffusion.training.mlflow_tracking import ENV_MLFLOW_URI, EXPERIMENT, tracking_uri
from forex_diffusion.training.train_sssd import train_from_config
from scale_utils import scale_overrides, synthetic_store

mlflow = pytest.importorskip("mlflow")


def test_tracking_uri_from_config_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_MLFLOW_URI, raising=False)
    cfg = load_sssd_config(DEFAULT_CONFIG_PATH)
    assert tracking_uri(cfg) is None
    monkeypatch.setenv(ENV_MLFLOW_URI, "file:///tmp/env-store")
    assert tracking_uri(cfg) == "file:///tmp/env-store"
    set_in_config = cfg.with_overrides(["training.mlflow_uri=file:///tmp/config-store"])
    assert tracking_uri(set_in_config) == "file:///tmp/config-store"


@pytest.mark.slow
def test_training_logs_metrics_config_and_best_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_MLFLOW_URI, raising=False)
    # MLflow 3 keeps the file store behind this switch (it prefers a database backend)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    synthetic_store(tmp_path, ["AAAUSD"])
    store_uri = (tmp_path / "mlruns").as_uri()
    cfg = load_sssd_config(
        DEFAULT_CONFIG_PATH,
        overrides=[
            *scale_overrides(tmp_path, "training.epochs=2", f"training.mlflow_uri={store_uri}"),
            "asset.symbol=AAAUSD",
            "asset.pip_size=0.0001",
        ],
        preset="cpu_small",
    )
    with Registry(f"sqlite:///{tmp_path / 'registry.db'}") as registry:
        result = train_from_config(cfg, registry=registry)
    assert result.status == "completed" and result.best_checkpoint is not None

    client = mlflow.tracking.MlflowClient(tracking_uri=store_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["asset"] == "AAAUSD"
    # one value per epoch for the epoch-level validation metrics
    for key in ("val_loss", "val_crps"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 2
    assert run.data.params["training/epochs"] == "2"
    assert run.data.params["model/name"] == cfg.model.name
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "config.yaml" in files
    ckpts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert ckpts == {"checkpoints/best.ckpt"}
    local = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
    assert load_sssd_config(local) == cfg
