"""SSSDWrapper with a real tiny model: scikit-learn protocol, CV consumers, causality, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.ensemble import StackingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from typer.testing import CliRunner

from forex_diffusion.cli.main import app
from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.store import CandleStore
from forex_diffusion.ensemble import (
    PurgedTimeSeriesSplit,
    SSSDWrapper,
    StackingForecaster,
    default_members,
)
from forex_diffusion.ensemble.data import BP, build_xy
from forex_diffusion.ensemble.persistence import MODEL_TYPE
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from forex_diffusion.registry import open_registry
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.train_sssd import SSSDTrainer
from training_utils import tiny_config, tiny_overrides, two_month_store

Trained = tuple[Path, SSSDConfig]
TRAIN = ("training.epochs=1", "training.max_train_batches_per_epoch=4")


def test_clone_and_set_params_round_trip() -> None:
    w = SSSDWrapper(asset="GBPUSD", horizon=15, num_samples=32, overrides=("seed=3",))
    params = w.get_params()
    assert params["asset"] == "GBPUSD" and params["horizon"] == 15
    twin = clone(w)
    assert twin is not w and twin.get_params() == params
    twin.set_params(horizon=240, output="median", refit=False)
    assert twin.horizon == 240 and twin.output == "median" and w.horizon == 15
    assert clone(twin).get_params() == twin.get_params()
    with pytest.raises(ValueError, match="Invalid parameter"):
        w.set_params(horizons=5)


@pytest.fixture(scope="module")
def trained(fx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    root = tmp_path_factory.mktemp("ensemble")
    data_dir = two_month_store(fx_dir, root)
    cfg = tiny_config(root, *TRAIN)
    result = SSSDTrainer(cfg).train(SSSDDataModule(data_path=data_dir, config=cfg))
    assert result.best_checkpoint is not None
    return root, cfg


def _wrapper(trained: Trained, **kw: object) -> SSSDWrapper:
    root, cfg = trained
    params: dict[str, object] = {
        "asset": "EURUSD",
        "horizon": 60,
        "model_name": cfg.model.name,
        "num_samples": 16,
        "refit": False,
        "preset": "cpu_small",
        "overrides": tuple(tiny_overrides(root, *TRAIN)),
    }
    params.update(kw)
    return SSSDWrapper(**params)  # type: ignore[arg-type]


def _xy(trained: Trained, start: str, end: str, data_dir: Path | None = None):
    root, cfg = trained
    candles = CandleStore(data_dir or root / "data").load("EURUSD")
    return build_xy(candles, cfg, 60, start=start, end=end)


@pytest.mark.realdata
def test_wrapper_forecasts_are_the_models(trained: Trained) -> None:
    root, _ = trained
    X, y, _ = _xy(trained, "2019-03-26", "2019-03-27")
    w = _wrapper(trained).fit(X, y)
    pred, std = w.predict(X), w.predict_std(X)
    assert pred.shape == std.shape == (len(X),)
    assert np.isfinite(pred).all() and (std > 0).all() and np.ptp(pred) > 0
    q = w.predict_quantiles(X, [0.05, 0.5, 0.95])
    assert q.shape == (len(X), 3) and (np.diff(q, axis=1) >= 0).all()
    dist = w.predict_distribution(X)
    np.testing.assert_allclose(dist.mean()[:, 0] * BP, pred)
    # one row: the same forecast the inference service makes from the candles up to t
    t = X.index[7]
    svc = SSSDInferenceService.from_checkpoint(w.checkpoint_path_, device="cpu")
    candles = CandleStore(root / "data").load("EURUSD")
    p = svc.predict(candles, asof=t, num_samples=16, generator=torch.Generator().manual_seed(0))
    expected = np.mean(np.log1p(p.samples[60] / p.last_close)) * BP
    assert w.predict(X.iloc[[7]])[0] == pytest.approx(expected, rel=1e-9)
    assert w.set_params(output="median").predict(X.iloc[[7]])[0] == pytest.approx(
        np.median(np.log1p(p.samples[60] / p.last_close)) * BP, rel=1e-9
    )


@pytest.mark.realdata
def test_runs_in_pipeline_cross_val_predict_and_stacking_regressor(trained: Trained) -> None:
    X, y, _ = _xy(trained, "2019-03-26", "2019-03-28")
    cv = PurgedTimeSeriesSplit(3, horizon_minutes=60, embargo_minutes=60, walk_forward=False)
    oof = cross_val_predict(_wrapper(trained), X, y, cv=cv)
    assert oof.shape == (len(X),) and np.isfinite(oof).all() and np.ptp(oof) > 0
    pipe = make_pipeline(FunctionTransformer(lambda d: d), _wrapper(trained))
    pipe.set_output(transform="pandas")
    assert np.isfinite(pipe.fit(X, y).predict(X)).all()
    stack = StackingRegressor(
        [("ridge", Ridge(alpha=10.0)), ("sssd", _wrapper(trained))], final_estimator=Ridge(), cv=cv
    )
    out = stack.fit(X, y).predict(X)
    assert out.shape == (len(X),) and np.isfinite(out).all()
    assert stack.final_estimator_.coef_.shape == (2,)


@pytest.mark.realdata
def test_perturbing_candles_after_a_fold_leaves_its_oof_predictions_unchanged(
    trained: Trained, tmp_path: Path
) -> None:
    root, cfg = trained
    candles = CandleStore(root / "data").load("EURUSD")
    start, end = "2019-03-25", "2019-03-29"
    X, y, std = build_xy(candles, cfg, 60, start=start, end=end)
    cv = PurgedTimeSeriesSplit(3, horizon_minutes=60, walk_forward=True)

    def stacked(data_dir: Path, X: pd.DataFrame, y: pd.Series) -> StackingForecaster:
        members = default_members(_wrapper(trained, data_dir=str(data_dir)))
        return StackingForecaster(members, cv=cv, std_window=12).fit(X, y)

    first = stacked(root / "data", X, y)
    fold0 = first.oof_[first.oof_["fold"] == 0]
    cut = fold0.index[-1]
    changed = candles.copy()
    after = changed.index >= cut
    changed.loc[after, ["open", "high", "low", "close"]] *= 1.03
    other = tmp_path / "data"
    CandleStore(other).write("EURUSD", changed, source="perturbed after fold 0")
    X2, y2, _ = build_xy(changed, cfg, 60, std, start=start, end=end)
    assert X2.index.equals(X.index) and not np.allclose(X2.iloc[-1], X.iloc[-1])
    second = stacked(other, X2, y2)
    again = second.oof_[second.oof_["fold"] == 0]
    cols = [*first.names_, "std"]
    np.testing.assert_allclose(again[cols], fold0[cols], rtol=1e-9, atol=1e-12)
    # the real SSSD member's weight stays in its bounds and moves with its std (when γ > 0)
    w = first.oof_weights_["sssd"]
    assert ((w >= 0) & (w <= 1)).all()
    assert first.gamma_ == 0.0 or w.nunique() > 10
    assert first.oof_samples_ is not None and first.oof_samples_.shape == (len(first.oof_), 16)


@pytest.mark.realdata
def test_ensemble_cli_fit_and_predict(trained: Trained, tmp_path: Path) -> None:
    root, cfg = trained
    opts = ["--preset", "cpu_small"]
    for o in tiny_overrides(root, *TRAIN):
        opts += ["-o", o]
    runner = CliRunner()
    fit = runner.invoke(
        app,
        [
            "ensemble", "fit", "--asset", "EURUSD", "--horizon", "60",
            "--start", "2019-03-25", "--end", "2019-03-28", "--n-splits", "2",
            "--num-samples", "16", "--model-name", cfg.model.name, "--name", "stack_h60",
            *opts,
        ],
    )  # fmt: skip
    assert fit.exit_code == 0, fit.output
    summary = json.loads(fit.output[fit.output.index("{") :])
    assert set(summary["oof_rmse_bp"]) == {"ridge", "lasso", "hgb", "sssd", "stack"}
    assert len(summary["pool_weights"]) == 3
    assert summary["pool_weights"] == pytest.approx(np.array(summary["pool_weights"]).clip(0))
    reg = open_registry(cfg)
    try:
        record = reg.get_model("EURUSD", "stack_h60")
    finally:
        reg.close()
    assert record.model_type == MODEL_TYPE
    out = tmp_path / "pred.csv"
    pred = runner.invoke(
        app,
        [
            "ensemble", "predict", "--asset", "EURUSD", "--name", "stack_h60",
            "--start", "2019-03-28", "--end", "2019-03-28 06:00", "--output", str(out), *opts,
        ],
    )  # fmt: skip
    assert pred.exit_code == 0, pred.output
    table = pd.read_csv(out, index_col=0)
    assert len(table) > 10 and np.isfinite(table[["stack", "w_sssd", "pool_q95"]]).all().all()
    assert (table["pool_q05"] < table["pool_q95"]).all()
    artifact = Path(record.training_config["artifact"])
    assert artifact.is_file() and record.training_config["sha256"][:16] in artifact.name
    with artifact.open("ab") as fh:
        fh.write(b"tampered")
    tampered = runner.invoke(
        app,
        ["ensemble", "predict", "--asset", "EURUSD", "--name", "stack_h60",
         "--start", "2019-03-28", "--end", "2019-03-29", *opts],
    )  # fmt: skip
    assert tampered.exit_code == 2 and "digest" in tampered.output
    missing = runner.invoke(
        app, ["ensemble", "predict", "--asset", "EURUSD", "--name", cfg.model.name,
              "--start", "2019-03-28", "--end", "2019-03-29", *opts],
    )  # fmt: skip
    assert missing.exit_code == 2 and "not a 'stacking_ensemble'" in missing.output


@pytest.mark.realdata
def test_refit_trains_a_model_on_the_range_of_x(trained: Trained) -> None:
    X, y, _ = _xy(trained, "2019-03-11", "2019-03-29")
    w = _wrapper(trained, refit=True, calibrated=True, val_fraction=0.3).fit(X, y)
    assert "_fit" in w.service_.model_name and w.checkpoint_path_.is_file()
    assert w.recalibrator_ is not None
    # the map is weighed by the independent outcomes of its calibration rows, as calibrate's
    evidence = w.recalibrator_.fitted_on["evidence"][str(w.horizon)]
    assert 0 < evidence["independent_outcomes"] <= int(0.3 * len(X)) + 1
    assert 0.0 <= evidence["map_weight"] <= 1.0
    assert np.isfinite(w.predict(X.iloc[-20:])).all()
    holed = pd.concat([X.iloc[:50], X.iloc[-50:]])
    with pytest.raises(ValueError, match="held-out block"):
        clone(w).fit(holed, y.loc[holed.index])
