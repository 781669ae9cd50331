"""Fit and apply a stored ensemble from the candle store (the body of ``forex-diffusion ensemble``).

``fit_ensemble``: flat features and targets on [start, end) → ``StackingForecaster`` (Ridge,
Lasso, HistGradientBoosting, SSSD) on walk-forward purged folds → a CRPS pool of SSSD's
out-of-fold samples with the seasonal-EWMA and GARCH baselines (fitted on the days before
``start``) on the same out-of-fold rows → saved and registered as a ``stacking_ensemble``.
``predict_ensemble``: the stored ensemble's forecasts and weights for new decision times.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.store import CandleStore, resolve_data_dir
from forex_diffusion.ensemble.data import BP, build_xy, five_minute_bars
from forex_diffusion.ensemble.persistence import FittedEnsemble, load_ensemble, save_ensemble
from forex_diffusion.ensemble.purged_split import PurgedTimeSeriesSplit
from forex_diffusion.ensemble.sssd_wrapper import SSSDWrapper
from forex_diffusion.ensemble.stacking import StackingForecaster, default_members
from forex_diffusion.errors import DataError
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.models.baselines import Baseline, build_baselines
from forex_diffusion.models.distribution import ForecastDistribution
from forex_diffusion.models.pool import LinearPool, fit_linear_pool, pool_forecast
from forex_diffusion.registry.records import ModelRecord
from forex_diffusion.registry.repository import open_registry
from forex_diffusion.timeframes import to_utc

POOL_BASELINES = ("ewma_seasonal", "garch")


@dataclass(frozen=True)
class EnsembleSpec:
    """What ``ensemble fit`` fits (see ``forex-diffusion ensemble fit --help``)."""

    asset: str
    horizon: int
    start: str
    end: str
    name: str = "stack_ensemble"
    model_name: str | None = None
    refit: bool = False
    calibrated: bool = True
    n_splits: int = 5
    num_samples: int = 100
    baseline_days: int = 60
    config_path: str | None = None
    preset: str | None = None
    overrides: tuple[str, ...] = ()
    data_dir: str | None = None


def _candles(config: SSSDConfig, asset: str, data_dir: str | None, end: Any) -> pd.DataFrame:
    store = CandleStore(resolve_data_dir(config, data_dir))
    return store.load(asset, start=None, end=end, timeframe=config.asset.base_timeframe)


def fit_pool_baselines(
    config: SSSDConfig, bars_5m: pd.DataFrame, before: pd.Timestamp, days: int
) -> list[Baseline]:
    """Seasonal EWMA and GARCH fitted on the ``days`` before ``before`` (nothing later)."""
    train = bars_5m[(bars_5m.index >= before - pd.Timedelta(days=days)) & (bars_5m.index < before)]
    wanted = config.evaluation.model_copy(update={"baselines": list(POOL_BASELINES)})
    return [b.fit(train) for b in build_baselines(wanted)]


def pool_components(
    sssd_samples_bp: np.ndarray,
    baselines: list[Baseline],
    bars_5m: pd.DataFrame,
    times: pd.DatetimeIndex,
    horizon: int,
) -> list[ForecastDistribution]:
    """SSSD's samples (N, S) in basis points and the baselines' forecasts, as log returns."""
    sssd = ForecastDistribution.from_samples(
        "sssd", times, (horizon,), sssd_samples_bp[:, None, :] / BP
    )
    history = bars_5m[bars_5m.index < times[-1]]
    return [sssd, *(b.forecast(history, times, (horizon,)) for b in baselines)]


def fit_ensemble(spec: EnsembleSpec, config: SSSDConfig) -> tuple[ModelRecord, FittedEnsemble]:
    """Fit, save and register an ensemble (``config`` is the one built from the spec's
    config_path/preset/overrides, with asset.symbol set)."""
    start, end = to_utc(spec.start), to_utc(spec.end)
    h = int(spec.horizon)
    candles = _candles(config, spec.asset, spec.data_dir, end + pd.Timedelta(minutes=h))
    X, y, standardizer = build_xy(candles, config, h, start=start, end=end)
    if len(X) < 10 * (spec.n_splits + 1):
        raise DataError(
            f"{spec.asset}: only {len(X)} decision times with targets in [{start}, {end}); "
            f"{spec.n_splits} walk-forward folds need at least {10 * (spec.n_splits + 1)}"
        )
    sssd = SSSDWrapper(
        asset=spec.asset,
        horizon=h,
        model_name=spec.model_name,
        num_samples=spec.num_samples,
        calibrated=spec.calibrated,
        refit=spec.refit,
        config_path=spec.config_path,
        preset=spec.preset,
        overrides=spec.overrides,
        data_dir=spec.data_dir,
    )
    cv = PurgedTimeSeriesSplit(
        spec.n_splits, h, config.data.effective_embargo_minutes, walk_forward=True
    )
    stack = StackingForecaster(default_members(sssd), cv=cv, horizon=h).fit(X, y)
    oof = stack.oof_
    bars = five_minute_bars(candles)
    baselines = fit_pool_baselines(config, bars, start, spec.baseline_days)
    pool: LinearPool | None = None
    if stack.oof_samples_ is not None:
        times = pd.DatetimeIndex(oof.index)
        comps = pool_components(stack.oof_samples_, baselines, bars, times, h)
        pool = fit_linear_pool(comps, oof["y"].to_numpy()[:, None] / BP)
    w = stack.oof_weights_[stack.uncertainty_member]
    summary = {
        "fit_range": [str(start), str(end)],
        "rows": len(X),
        "oof_rows": len(oof),
        "oof_rmse_bp": {
            c: float(np.sqrt(np.mean((oof[c] - oof["y"]) ** 2))) for c in [*stack.names_, "stack"]
        },
        "sssd_weight": {"mean": float(w.mean()), "min": float(w.min()), "max": float(w.max())},
        "pool_weights": pool.weights[0].tolist() if pool else None,
        "pool_fit_crps": pool.fit_crps[0].tolist() if pool else None,
    }
    ensemble = FittedEnsemble(
        asset=spec.asset.upper(),
        horizon=h,
        stack=stack,
        pool=pool,
        baselines=baselines,
        standardizer=standardizer.to_dict(),
        config_overrides=list(spec.overrides),
        summary=summary,
    )
    registry = open_registry(config)
    try:
        directory = Path(config.paths.checkpoint_dir)
        record = save_ensemble(ensemble, registry, directory, spec.name)
    finally:
        registry.close()
    logger.info("ensemble {}/{} fitted: {}", record.asset, record.model_name, summary)
    return record, ensemble


def predict_ensemble(
    config: SSSDConfig,
    asset: str,
    name: str,
    start: Any,
    end: Any,
    data_dir: str | None = None,
) -> pd.DataFrame:
    """Stack forecast, member weights and pool quantiles per decision time in [start, end).

    Columns: ``stack`` and each member's prediction (basis points), ``w_<member>`` the
    weights used, ``z``, and (with a pool) ``pool_mean``/``pool_q05``/``pool_q50``/``pool_q95``
    (basis points); decision times whose features are not complete yet are left out.
    """
    registry = open_registry(config)
    try:
        ens = load_ensemble(registry, asset, name)
    finally:
        registry.close()
    t0, t1 = to_utc(start), to_utc(end)
    candles = _candles(config, ens.asset, data_dir, t1)
    std = Standardizer.from_dict(ens.standardizer, where=f"ensemble {asset}/{name}")
    X, _, _ = build_xy(candles, config, ens.horizon, std, start=t0, end=t1, require_target=False)
    out = ens.stack.predict_with_weights(X)
    frame = out.members.copy()
    frame["stack"] = out.prediction
    for c in out.weights.columns:
        frame[f"w_{c}"] = out.weights[c]
    frame["z"] = out.z
    if ens.pool is not None:
        sssd = ens.stack.members_[ens.stack.u_index_][1]
        comps = pool_components(
            sssd.sample(X),
            ens.baselines,
            five_minute_bars(candles),
            out.prediction.index,
            ens.horizon,
        )
        pooled = pool_forecast(ens.pool, comps)
        frame["pool_mean"] = pooled.mean()[:, 0] * BP
        for q in (0.05, 0.5, 0.95):
            frame[f"pool_q{round(q * 100):02d}"] = pooled.quantile(q)[:, 0] * BP
    return frame
