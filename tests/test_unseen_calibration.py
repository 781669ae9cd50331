"""Calibrating a global model for a pair it never saw, on that pair's own history (issue 24):
the unseen-asset embedding's forecasts over the pair's validation range, with a standardizer
fitted on its candles before that range; stored beside the trained assets' maps and used for
that pair instead of the location shrink pooled over the trained assets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from forex_diffusion.calibration import load_recalibrator
from forex_diffusion.cli.main import app
from forex_diffusion.config.sssd_config import SSSDConfig, config_for_asset
from forex_diffusion.data.store import CandleStore
from forex_diffusion.dataset.multi_asset import GLOBAL_ASSET, per_asset_standardizers
from forex_diffusion.dataset.source import build_feature_source
from forex_diffusion.errors import DataError
from forex_diffusion.inference.calibrate import calibrate_global_checkpoint, calibrate_unseen_asset
from forex_diffusion.inference.sssd_inference import (
    SSSDInferenceService,
    fit_history_standardizer,
)
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.checkpoint import load_checkpoint, save_checkpoint
from fx_test_utils import load_fx
from training_utils import tiny_config, tiny_overrides

PAIRS = ("EURUSD", "GBPUSD")
UNSEEN = "USDJPY"
FIT = {"num_samples": 32, "max_forecasts": 120, "location": True}


def _store(fx_dir: Path, data_dir: Path) -> CandleStore:
    store = CandleStore(data_dir)
    for asset in (*PAIRS, UNSEEN):
        df = load_fx(fx_dir, "2019-01-01", "2019-04-20", asset=asset)
        store.write(asset, df, source=f"{asset}_M1_2019.csv.gz (Jan-Apr)")
    return store


def _global_checkpoint(root: Path, store: CandleStore) -> tuple[SSSDConfig, Path]:
    """An untrained tiny global model of EURUSD and GBPUSD (its head's output layer randomised,
    so that its location varies with the inputs), calibrated for both."""
    cfg = tiny_config(root, f"asset.symbol={GLOBAL_ASSET}", f"model.assets=[{', '.join(PAIRS)}]")
    standardizers, names = {}, {}
    for asset in PAIRS:
        source = build_feature_source(store.load(asset), config_for_asset(cfg, asset))
        standardizers[asset] = source.standardizer.to_dict()
        names = {tf: list(n) for tf, n in source.feature_names.items()}
    torch.manual_seed(0)
    model = build_sssd_model(cfg, {tf: len(n) for tf, n in names.items()})
    with torch.no_grad():
        model.head.out.weight.normal_(0.0, 0.3)
    path = Path(cfg.paths.checkpoint_dir) / GLOBAL_ASSET / cfg.model.name / "best.ckpt"
    save_checkpoint(path, model, cfg, names, per_asset_standardizers(standardizers))
    calibrate_global_checkpoint(path, store, **FIT)
    return cfg, path


@pytest.fixture(scope="module")
def calibrated(
    fx_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SSSDConfig, Path, CandleStore]:
    root = tmp_path_factory.mktemp("unseen_calibration")
    store = _store(fx_dir, root / "data")
    cfg, path = _global_checkpoint(root, store)
    return cfg, path, store


def _service(path: Path, store: CandleStore, asset: str) -> SSSDInferenceService:
    cfg = config_for_asset(load_checkpoint(path).config, asset)
    return SSSDInferenceService.from_checkpoint(
        path, asset=asset, unseen_standardizer=fit_history_standardizer(store.load(asset), cfg)
    )


def test_an_unseen_pair_is_served_its_own_calibration_and_the_trained_maps_stay(
    calibrated: tuple[SSSDConfig, Path, CandleStore], tmp_path: Path
) -> None:
    _, original, store = calibrated
    path = tmp_path / "best.ckpt"
    shutil.copy(original, path)
    trained = load_checkpoint(path).calibration
    assert trained is not None and "unseen" not in trained
    # before: the pooled location shrink, identity maps
    assert _service(path, store, UNSEEN).calibration.fitted_on["pooled_from"] == sorted(PAIRS)

    result = calibrate_unseen_asset(path, store, UNSEEN, **FIT)
    payload = load_checkpoint(path).calibration
    assert payload["assets"] == trained["assets"]  # the trained assets' maps untouched
    assert payload["unseen"] == {UNSEEN: result.calibration.to_dict()}
    val = load_checkpoint(path).config.data.splits.val.utc_range("validation range")
    assert result.range == val and result.forecasts > 50
    assert result.calibration.location is not None
    # served: its own map, fitted on its validation forecasts, not the pool
    served = _service(path, store, UNSEEN).calibration
    assert served is not None and served.to_dict() == result.calibration.to_dict()
    assert "pooled_from" not in served.fitted_on
    # another pair the model never saw still gets the pool (AUDUSD served with JPY's candles'
    # standardizer: only which calibration it is given matters here)
    jpy_std = fit_history_standardizer(
        store.load(UNSEEN), config_for_asset(trained_cfg(path), UNSEEN)
    )
    other = SSSDInferenceService.from_checkpoint(path, asset="AUDUSD", unseen_standardizer=jpy_std)
    assert other.calibration is not None and other.calibration.fitted_on["pooled_from"] == sorted(
        PAIRS
    )
    # recalibrating the trained assets keeps the unseen pair's map
    calibrate_global_checkpoint(path, store, **FIT)
    assert load_checkpoint(path).calibration["unseen"] == payload["unseen"]
    # a trained asset is calibrated with the model's own assets, not as an unseen pair
    with pytest.raises(DataError, match="one of the global model's assets"):
        calibrate_unseen_asset(path, store, "EURUSD", **FIT)


def trained_cfg(path: Path) -> SSSDConfig:
    return load_checkpoint(path).config


def test_an_unseen_pair_calibration_reads_nothing_after_its_range(
    calibrated: tuple[SSSDConfig, Path, CandleStore], tmp_path: Path
) -> None:
    """Candles after the validation range (the test range) change neither the standardizer the
    calibration forecasts use nor the map; candles inside it change the map (the outcomes)."""
    _, original, store = calibrated
    val = trained_cfg(original).data.splits.val.utc_range("validation range")
    candles = store.load(UNSEEN)

    def fitted(bend: pd.Timestamp, name: str) -> dict[str, object]:
        bent = candles.copy()
        late = bent.index >= bend
        bent.loc[late, ["open", "high", "low", "close"]] *= 1.07
        other = CandleStore(tmp_path / name)
        other.write(UNSEEN, bent, source="bent")
        path = tmp_path / f"{name}.ckpt"
        shutil.copy(original, path)
        return calibrate_unseen_asset(path, other, UNSEEN, **FIT).calibration.to_dict()

    path = tmp_path / "plain.ckpt"
    shutil.copy(original, path)
    plain = calibrate_unseen_asset(path, store, UNSEEN, **FIT).calibration.to_dict()
    assert fitted(val.end, "after") == plain
    assert fitted(val.start + pd.Timedelta(days=14), "inside") != plain


def test_calibrate_command_calibrates_an_unseen_pair_of_the_global_model(
    calibrated: tuple[SSSDConfig, Path, CandleStore], tmp_path: Path
) -> None:
    cfg, original, _ = calibrated
    root = Path(cfg.paths.artifacts_dir)
    copy = tmp_path / "art"
    shutil.copytree(root / "checkpoints", copy / "checkpoints")
    args = ["calibrate", "--asset", UNSEEN, "--preset", "cpu_small"]
    for o in tiny_overrides(
        tmp_path,
        f"paths.data_dir={root / 'data'}",
        f"paths.checkpoint_dir={copy / 'checkpoints'}",
        "inference.calibration_samples=32",
        "inference.calibration_forecasts=120",
    ):
        args += ["-o", o]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"{UNSEEN} is not among the global model's assets" in res.output
    assert f"{UNSEEN}: calibration fitted on" in res.output and "location kept" in res.output
    path = copy / "checkpoints" / GLOBAL_ASSET / cfg.model.name / "best.ckpt"
    payload = load_checkpoint(path).calibration
    assert set(payload["unseen"]) == {UNSEEN}
    assert payload["assets"] == load_checkpoint(original).calibration["assets"]
    stored = load_recalibrator(payload["unseen"][UNSEEN])
    assert stored.fitted_on["forecasts"] <= 120 and stored.fitted_on["num_samples"] == 32
