"""Ensemble benchmark: point accuracy of each member and of the stack, CRPS of SSSD, of the best
baseline and of the pool, and SSSD's weight, per horizon, on a held-out part of a range.

Usage (needs a trained model, e.g. ``forex-diffusion train --asset EURUSD --preset cpu_small``):
    .venv/bin/python benchmarks/bench_ensemble.py --asset EURUSD --preset cpu_small \
        --start 2023-07-01 --end 2024-01-01 [--model-name sssd_cpu_small] [--stride 12]
    .venv/bin/python benchmarks/bench_ensemble.py --synthetic-demo   # tiny, self-contained

The range's decision times are split in time: the first ``--fit-share`` fits the stack
(purged walk-forward out-of-fold predictions → meta-learner, members refitted on the whole fit
part) and the pool (on the out-of-fold rows); everything is scored on the rest, which nothing
was fitted on. The SSSD model must have been trained before ``--start`` (the wrapper warns).
Point errors are in basis points of log return; CRPS is in basis points too.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, SSSDConfig, load_sssd_config
from forex_diffusion.data.store import CandleStore, resolve_data_dir
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.ensemble import (
    PurgedTimeSeriesSplit,
    SSSDWrapper,
    StackingForecaster,
    default_members,
    fit_linear_pool,
    pool_forecast,
)
from forex_diffusion.ensemble.data import BP, build_xy, five_minute_bars
from forex_diffusion.ensemble.workflow import fit_pool_baselines, pool_components
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.train_sssd import SSSDTrainer

TINY = [
    "data.lookbacks={5m: 48, 15m: 16, 1h: 8, 4h: 4}",
    "model.encoder.d_model=16",
    "model.encoder.n_layers=1",
    "model.encoder.state_dim=8",
    "model.encoder.attention_heads=2",
    "model.encoder.context_dim=32",
    "model.horizon_embedding_dim=8",
    "model.head.hidden_dim=32",
    "model.head.n_blocks=2",
    "model.head.timestep_embedding_dim=16",
    "training.epochs=2",
    "training.batch_size=64",
    "training.learning_rate=0.003",
    "training.ssm_learning_rate=0.003",
    "training.warmup_steps=5",
    "training.max_train_batches_per_epoch=12",
    "training.val_forecast_samples=16",
    "training.precision=32",
    "inference.steps=5",
    "data.splits.train.start=2021-01-04",
    "data.splits.train.end=2021-01-29",
    "data.splits.val.start=2021-02-01",
    "data.splits.val.end=2021-02-10",
    "data.splits.test.start=2021-02-11",
    "data.splits.test.end=2021-02-28",
]


def synthetic_setup(root: Path) -> tuple[list[str], str, str]:
    """A synthetic store and a tiny trained model under ``root``: (overrides, start, end)."""
    overrides = [
        *TINY,
        "asset.symbol=EURUSD",
        f"paths.data_dir={root / 'data'}",
        f"paths.artifacts_dir={root}",
        f"paths.checkpoint_dir={root / 'checkpoints'}",
        f"paths.log_dir={root / 'logs'}",
        f"paths.reports_dir={root / 'reports'}",
    ]
    candles = generate_synthetic_market("2020-12-01", "2021-03-01", seed=11)
    CandleStore(root / "data").write("EURUSD", candles, source="synthetic (bench_ensemble)")
    cfg = load_sssd_config(DEFAULT_CONFIG_PATH, overrides=overrides, preset="cpu_small")
    SSSDTrainer(cfg, accelerator="cpu").train(SSSDDataModule(config=cfg))
    return overrides, "2021-02-12", "2021-02-27"


def rmse(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - y) ** 2)))


def run_horizon(args: argparse.Namespace, cfg: SSSDConfig, candles: pd.DataFrame, h: int) -> None:
    X, y, _ = build_xy(candles, cfg, h, start=args.start, end=args.end)
    cut = int(len(X) * args.fit_share)
    Xf, yf, Xt, yt = X.iloc[:cut], y.iloc[:cut], X.iloc[cut:], y.iloc[cut:].to_numpy()
    sssd = SSSDWrapper(
        asset=args.asset,
        horizon=h,
        model_name=args.model_name,
        num_samples=args.num_samples,
        calibrated=args.calibrated,
        refit=False,
        config_path=str(args.config),
        preset=args.preset,
        overrides=tuple(args.override),
        data_dir=args.data_dir,
    )
    cv = PurgedTimeSeriesSplit(args.n_splits, h, cfg.data.effective_embargo_minutes)
    stack = StackingForecaster(default_members(sssd), cv=cv, horizon=h).fit(Xf, yf)
    out = stack.predict_with_weights(Xt)
    print(f"\n=== horizon {h} min: fit {len(Xf)} rows ({stack.oof_.shape[0]} out of fold), "
          f"test {len(Xt)} rows {Xt.index[0]} .. {Xt.index[-1]} ===")  # fmt: skip
    print(f"{'forecaster':<12}{'RMSE bp':>10}{'MAE bp':>10}")
    rows = [*((n, out.members[n].to_numpy()) for n in stack.names_), ("stack", out.prediction)]
    rows.append(("zero", np.zeros(len(yt))))
    for name, p in rows:
        p = np.asarray(p)
        print(f"{name:<12}{rmse(p, yt):>10.3f}{np.mean(np.abs(p - yt)):>10.3f}")
    bars = five_minute_bars(candles)
    baselines = fit_pool_baselines(cfg, bars, Xf.index[0], args.baseline_days)
    assert stack.oof_samples_ is not None
    oof_t = pd.DatetimeIndex(stack.oof_.index)
    comps = pool_components(stack.oof_samples_, baselines, bars, oof_t, h)
    pool = fit_linear_pool(comps, stack.oof_["y"].to_numpy()[:, None] / BP)
    sssd_fit = stack.members_[stack.u_index_][1]
    test_comps = pool_components(
        sssd_fit.sample(Xt), baselines, bars, pd.DatetimeIndex(Xt.index), h
    )
    pooled = pool_forecast(pool, test_comps)
    y_lr = yt[:, None] / BP
    crps = {c.name: float(np.nanmean(c.crps(y_lr))) * BP for c in test_comps}
    best = min((n for n in crps if n != "sssd"), key=crps.__getitem__)
    print(f"CRPS bp: sssd {crps['sssd']:.4f}, best baseline {best} {crps[best]:.4f}, "
          f"pool {float(np.nanmean(pooled.crps(y_lr))) * BP:.4f}; pool weights "
          f"{dict(zip(pool.names, np.round(pool.weights[0], 3), strict=True))}")  # fmt: skip
    w = out.weights["sssd"]
    print(f"SSSD weight (test): mean {w.mean():.3f}, range [{w.min():.3f}, {w.max():.3f}], "
          f"gamma {stack.gamma_}; at a bound {np.mean((w <= 0) | (w >= 1)):.1%} of rows")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--asset", default="EURUSD")
    ap.add_argument("--model-name", default=None)
    ap.add_argument("--start", default="2023-07-01")
    ap.add_argument("--end", default="2024-01-01")
    ap.add_argument("--horizons", type=int, nargs="+", default=[5, 15, 60, 240])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG_PATH))
    ap.add_argument("--preset", default="cpu_small")
    ap.add_argument("--override", nargs="*", default=[])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--stride", type=int, default=12, help="decision every stride x 5 min")
    ap.add_argument("--n-splits", type=int, default=5)
    ap.add_argument("--num-samples", type=int, default=100)
    ap.add_argument("--fit-share", type=float, default=0.6)
    ap.add_argument("--baseline-days", type=int, default=60)
    ap.add_argument("--raw", dest="calibrated", action="store_false", help="no recalibration")
    ap.add_argument("--synthetic-demo", action="store_true", help="tiny self-contained run")
    args = ap.parse_args()
    tmp = None
    if args.synthetic_demo:
        tmp = tempfile.TemporaryDirectory(prefix="bench_ensemble_")
        args.override, args.start, args.end = synthetic_setup(Path(tmp.name))
        args.horizons, args.n_splits, args.num_samples, args.stride = [15, 60], 3, 16, 3
        args.baseline_days = 40
    args.override = [*args.override, f"data.decision_stride={args.stride}"]
    cfg = load_sssd_config(args.config, overrides=args.override, preset=args.preset)
    end = pd.Timestamp(args.end, tz="UTC") + pd.Timedelta(minutes=max(args.horizons))
    candles = CandleStore(resolve_data_dir(cfg, args.data_dir)).load(
        args.asset, end=end, timeframe=cfg.asset.base_timeframe
    )
    for h in args.horizons:
        run_horizon(args, cfg, candles, h)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
