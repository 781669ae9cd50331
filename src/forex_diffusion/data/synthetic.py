"""A seeded synthetic FX market for tests and the quickstart (no real data needed).

1-minute bid-like bars with GARCH(1,1)-style volatility clustering, intraday and weekday
seasonality of volatility, Student-t (fat-tailed) innovations, a weekly close from Friday
22:00 to Sunday 22:00 UTC, and occasional missing minutes. The frame carries
``attrs["synthetic"] = True`` so nobody mistakes it for market data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forex_diffusion.timeframes import to_utc


@dataclass(frozen=True)
class SyntheticMarketSpec:
    """Parameters of the synthetic market (per-minute log-return scale)."""

    start_price: float = 1.10
    base_vol: float = 1.2e-4  # long-run per-minute volatility of log returns
    garch_alpha: float = 0.06
    garch_beta: float = 0.92
    student_df: float = 4.0
    missing_minute_rate: float = 0.02  # share of quiet minutes with no quote
    decimals: int = 5


def _seasonal_scale(ts: pd.DatetimeIndex) -> np.ndarray:
    """Intraday (London/NY sessions busier) and weekday volatility multipliers."""
    hour = ts.hour.to_numpy() + ts.minute.to_numpy() / 60.0
    intraday = (
        0.6
        + 0.5 * np.exp(-0.5 * ((hour - 9.0) / 2.5) ** 2)
        + 0.7 * np.exp(-0.5 * ((hour - 14.5) / 2.0) ** 2)
    )
    weekday = np.array([0.95, 1.0, 1.05, 1.05, 1.1, 0.8, 0.8])[ts.day_of_week.to_numpy()]
    return intraday * weekday


def _market_open(ts: pd.DatetimeIndex) -> np.ndarray:
    """True for minutes when the FX market trades (closed Fri 22:00 -> Sun 22:00 UTC)."""
    dow = ts.day_of_week.to_numpy()
    hour = ts.hour.to_numpy()
    closed = (dow == 5) | ((dow == 4) & (hour >= 22)) | ((dow == 6) & (hour < 22))
    return ~closed


def generate_synthetic_market(
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    seed: int = 0,
    spec: SyntheticMarketSpec | None = None,
) -> pd.DataFrame:
    """Synthetic 1-minute candles in [start, end) (UTC), reproducible for a given seed.

    Returns:
        DataFrame indexed by UTC bar open time, columns open/high/low/close/volume (float64).
    """
    spec = spec or SyntheticMarketSpec()
    rng = np.random.default_rng(seed)
    grid = pd.date_range(
        to_utc(start).floor("min"), to_utc(end).floor("min"), freq="1min", inclusive="left"
    )
    grid = grid[_market_open(grid)]
    n = len(grid)
    if n == 0:
        raise ValueError(
            f"no trading minutes between {start} and {end} (the synthetic market is closed on weekends)"
        )
    season = _seasonal_scale(grid)
    # GARCH(1,1) on unit-variance t innovations, scaled by seasonality and base vol
    t_scale = np.sqrt((spec.student_df - 2) / spec.student_df)
    z = rng.standard_t(spec.student_df, size=n) * t_scale
    omega = 1.0 - spec.garch_alpha - spec.garch_beta
    var = np.empty(n)
    eps = np.empty(n)
    v = 1.0
    for i in range(n):
        var[i] = v
        eps[i] = np.sqrt(v) * z[i]
        v = omega + spec.garch_alpha * eps[i] ** 2 + spec.garch_beta * v
    sigma = spec.base_vol * season * np.sqrt(var)
    log_close = np.log(spec.start_price) + np.cumsum(eps * spec.base_vol * season)
    close = np.exp(log_close)
    open_ = np.r_[spec.start_price, close[:-1]]
    wick_hi = np.abs(rng.normal(0, 0.6, n)) * sigma
    wick_lo = np.abs(rng.normal(0, 0.6, n)) * sigma
    high = np.maximum(open_, close) * np.exp(wick_hi)
    low = np.minimum(open_, close) * np.exp(-wick_lo)
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.poisson(30 * season).astype("float64"),
        },
        index=pd.DatetimeIndex(grid, name="timestamp").as_unit("ns"),
    )
    rounded = frame[["open", "high", "low", "close"]].round(spec.decimals)
    rounded["high"] = rounded[["open", "high", "close"]].max(axis=1)
    rounded["low"] = rounded[["open", "low", "close"]].min(axis=1)
    frame[["open", "high", "low", "close"]] = rounded
    quiet = season < 0.75
    drop = quiet & (rng.random(n) < spec.missing_minute_rate)
    frame = frame[~drop]
    frame.attrs["synthetic"] = True
    return frame
