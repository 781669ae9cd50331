"""The per-forecast table of an evaluation (``evaluate --export``): one row per decision time ×
horizon × forecaster, for a user's own analysis in pandas.

Units: the forecasts are of the log return r = log(close(t+h) / close(t)) (the evaluation's own
unit; ×1e4 = basis points); ``realised_change`` and ``realised_pips`` give the realised move in
price units and pips too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from forex_diffusion.errors import ConfigError
from forex_diffusion.fileio import atomic_write
from forex_diffusion.models.distribution import ForecastDistribution

EXPORT_SUFFIXES = (".parquet", ".csv")


def quantile_column(level: float) -> str:
    """The column of the quantile at ``level``: ``q0.1`` style."""
    return f"q{level:g}"


def forecast_frame(
    forecasts: Mapping[str, ForecastDistribution],
    targets: np.ndarray,
    last_close: np.ndarray,
    decision_times: pd.DatetimeIndex,
    horizons: Sequence[int],
    quantile_levels: Sequence[float],
    pip_size: float,
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The long table: columns decision_time, horizon_min, forecaster, label, last_close,
    realised (log return), realised_change, realised_pips, mean, std, one column per quantile
    level (``q0.1``, ...), pit and crps (log-return units).

    Args:
        forecasts: name → forecast over (N, H).
        targets: (N, H) realised log returns; last_close: (N,); decision_times: (N,).
    """
    n, h = targets.shape
    levels = np.asarray(quantile_levels, dtype=np.float64)
    base = {
        "decision_time": pd.DatetimeIndex(decision_times).repeat(h),
        "horizon_min": np.tile(np.asarray(horizons, dtype=np.int64), n),
        "last_close": np.repeat(last_close, h),
        "realised": targets.reshape(-1),
    }
    change = base["last_close"] * np.expm1(base["realised"])
    frames = []
    for name, fc in forecasts.items():
        q = fc.quantile(levels)  # (L, N, H)
        cols = {
            **base,
            "forecaster": name,
            "label": (labels or {}).get(name, name),
            "realised_change": change,
            "realised_pips": change / pip_size,
            "mean": fc.mean().reshape(-1),
            "std": fc.std().reshape(-1),
            **{quantile_column(lv): q[k].reshape(-1) for k, lv in enumerate(levels)},
            "pit": fc.cdf(targets).reshape(-1),
            "crps": fc.crps(targets).reshape(-1),
        }
        frames.append(pd.DataFrame(cols))
    frame = pd.concat(frames, ignore_index=True)
    first = ["decision_time", "horizon_min", "forecaster", "label", "last_close"]
    return frame[first + [c for c in frame.columns if c not in first]]


def write_export(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write the table as Parquet or CSV (by the suffix), atomically.

    Raises:
        ConfigError: another suffix.
    """
    path = Path(path)
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise ConfigError(
            f"--export {path}: use a .parquet or .csv file name (got {path.suffix or 'none'})"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        atomic_write(path, lambda p: frame.to_csv(p, index=False))
    else:
        atomic_write(path, lambda p: frame.to_parquet(p, index=False))
    return path
