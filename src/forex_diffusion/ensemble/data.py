"""The ensemble's design matrix: flat causal features X and realised targets y per decision time.

Targets are h-minute log returns in basis points, y = 1e4 · log(close(t + h) / close(t)), the
evaluation's target definition scaled so that linear members with default penalties are not
fitted on numbers of order 1e-4. Every member of the ensemble predicts in these units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.candles import infer_base_timeframe
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.evaluation.targets import realized_log_returns
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.unified_pipeline import unified_feature_pipeline
from forex_diffusion.timeframes import to_utc

BP = 1e4  # log return -> basis points


def five_minute_bars(candles: pd.DataFrame) -> pd.DataFrame:
    """Complete 5m bars of 1m or 5m candles (open-time index)."""
    base = infer_base_timeframe(candles.index.asi8)
    return resample_ohlc(candles, "5m", base_timeframe=base)


def realized_bp(bars_5m: pd.DataFrame, times: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """(N,) realised target in basis points for each decision time (NaN where a bar is missing)."""
    return realized_log_returns(bars_5m, times, (int(horizon),))[:, 0] * BP


def build_xy(
    candles: pd.DataFrame,
    config: SSSDConfig,
    horizon: int,
    standardizer: Standardizer | None = None,
    start: Any = None,
    end: Any = None,
    require_target: bool = True,
) -> tuple[pd.DataFrame, pd.Series, Standardizer]:
    """Flat features and targets for the decision times in [start, end) (those without a
    target are left out unless ``require_target`` is False; their y is NaN).

    Args:
        candles: base candles of the asset (config.asset.base_timeframe).
        config: the configuration whose features and decision stride are used; the
            standardizer is fitted on its ``data.splits.train`` range when none is given.
        horizon: target horizon in minutes (a multiple of 5).
        standardizer: a fitted standardizer to apply (never refitted).

    Returns:
        (X (N, F) indexed by decision time, y (N,) in basis points, the standardizer).
    """
    flat, fitted, _ = unified_feature_pipeline(candles, config, "flat", standardizer)
    assert isinstance(flat, pd.DataFrame)
    times = pd.DatetimeIndex(flat.index)
    keep = np.ones(len(times), dtype=bool)
    if start is not None:
        keep &= times >= to_utc(start)
    if end is not None:
        keep &= times < to_utc(end)
    flat = flat[keep]
    y = realized_bp(five_minute_bars(candles), pd.DatetimeIndex(flat.index), horizon)
    ok = np.isfinite(flat.to_numpy()).all(axis=1)
    if require_target:
        ok &= np.isfinite(y)
    X = flat[ok].astype(np.float64)
    return X, pd.Series(y[ok], index=X.index, name=f"y_{horizon}m_bp"), fitted
