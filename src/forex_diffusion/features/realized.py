"""Realised-volatility features in the HAR spirit, from the 1m bars inside each 5m bar.

Per 5m bar (labelled by its open time, usable once it has closed):
* ``rv``: realised variance, the sum of squared 1m close-to-close log returns of the minutes
  inside the bar (the first minute's return is taken from the previous bar's last close; a
  return across a gap of more than an hour, such as a weekend, is left out);
* ``pk``: Parkinson's range variance (ln H/L)² / (4 ln 2) of the 5m bar;
* ``gk``: Garman–Klass variance ½(ln H/L)² − (2 ln 2 − 1)(ln C/O)² of the 5m bar.
Each is then averaged over the last hour, day and week of 5m bars (12, 288 and 1440 bars:
five trading days) and reported as the log of the square root (a log volatility), which is
scale-free: multiplying every price by a constant leaves it unchanged.
All rows depend only on bars up to their own (causal); a window needs all its bars to exist.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forex_diffusion.timeframes import timeframe_minutes

WINDOWS: dict[str, int] = {"1h": 12, "1d": 288, "1w": 1440}
_LN2 = np.log(2.0)
MAX_RETURN_GAP_MIN = 60  # a return across a longer gap (weekend, holiday) is not realised variance
FLOOR = 1e-20  # variance floor: a bar with no price change has log-vol log(1e-10), not -inf


def base_return_squares(base: pd.DataFrame) -> pd.Series:
    """Squared close-to-close log return of each base candle from the previous one; NaN for the
    first candle and across a gap of more than ``MAX_RETURN_GAP_MIN``. (n,) indexed like base."""
    close = base["close"].to_numpy(np.float64)
    r = np.log(close[1:] / close[:-1])
    gap = np.diff(base.index.as_unit("ns").asi8) > MAX_RETURN_GAP_MIN * 60 * 10**9
    return pd.Series(np.r_[np.nan, np.where(gap, np.nan, r * r)], index=base.index)


class BaseReturnSquares:
    """:func:`base_return_squares` one candle at a time: each new candle's squared log return
    from the previous candle, 0.0 where the batch has NaN (first candle, or across a gap of
    more than ``MAX_RETURN_GAP_MIN``), which the per-bar sum counts as 0."""

    def __init__(self) -> None:
        self.prev_ns: int | None = None
        self.prev_close = math.nan

    def update(self, open_ns: int, close: float) -> float:
        """The squared return of the candle opening at ``open_ns`` (ns) with ``close``."""
        near = (
            self.prev_ns is not None and open_ns - self.prev_ns <= MAX_RETURN_GAP_MIN * 60 * 10**9
        )
        r2 = math.log(close / self.prev_close) ** 2 if near else 0.0
        self.prev_ns, self.prev_close = open_ns, close
        return r2


def bar_realized_variance(base: pd.DataFrame, bar: str = "5m") -> pd.Series:
    """``rv`` of each ``bar`` (indexed by its open time): the sum of the squared base returns of
    the candles inside it (see :func:`base_return_squares`; left-out returns count as 0)."""
    r2 = base_return_squares(base)
    return r2.groupby(base.index.floor(f"{timeframe_minutes(bar)}min")).sum(min_count=0)


def range_variances(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray
) -> dict[str, np.ndarray]:
    """Parkinson ``pk`` and Garman–Klass ``gk`` variances of bars from their OHLC, each (n,)."""
    hl = np.log(high / low)
    co = np.log(close / open_)
    return {"pk": hl * hl / (4 * _LN2), "gk": 0.5 * hl * hl - (2 * _LN2 - 1) * co * co}


def per_bar_variances(base: pd.DataFrame, bar: str = "5m") -> pd.DataFrame:
    """rv, pk and gk of each ``bar`` from the base (1m or 5m) candles. (n_bars, 3)

    With 5m base candles there are no minutes inside a bar: ``rv`` is then the squared 5m
    close-to-close log return.
    """
    minutes = timeframe_minutes(bar)
    key = base.index.floor(f"{minutes}min")
    grouped = base.groupby(key)
    o = grouped["open"].first().to_numpy(np.float64)
    h = grouped["high"].max().to_numpy(np.float64)
    lo = grouped["low"].min().to_numpy(np.float64)
    c = grouped["close"].last().to_numpy(np.float64)
    rv = bar_realized_variance(base, bar).to_numpy()
    return pd.DataFrame(
        {"rv": rv, **range_variances(o, h, lo, c)}, index=grouped["open"].first().index
    )


def bar_variances(bars: pd.DataFrame) -> pd.DataFrame:
    """rv, pk and gk of 5m bars that carry their realised variance in an ``rv`` column
    (``bar_realized_variance`` of the base candles). (n_bars, 3)"""
    o, h, lo, c = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
    return pd.DataFrame(
        {"rv": bars["rv"].to_numpy(np.float64), **range_variances(o, h, lo, c)}, index=bars.index
    )


def har_features(variances: pd.DataFrame) -> pd.DataFrame:
    """Log volatility of each per-bar variance averaged over the last hour, day and week.

    Args:
        variances: per 5m bar, the columns of :func:`per_bar_variances`.

    Returns:
        Columns ``{name}_{window}`` (e.g. ``rv_1h``, ``gk_1w``): ½·log(mean of the last w bars),
        NaN until w bars exist.
    """
    out = {}
    for col in variances.columns:
        v = variances[col].clip(lower=0)
        for name, w in WINDOWS.items():
            mean = v.rolling(w, min_periods=w).mean().to_numpy()
            out[f"{col}_{name}"] = 0.5 * np.log(np.maximum(mean, FLOOR))
    return pd.DataFrame(out, index=variances.index)


def har_warmup() -> int:
    """Leading 5m bars whose HAR features are NaN (the longest window minus one)."""
    return max(WINDOWS.values()) - 1


def har_names() -> list[str]:
    """Column names of :func:`har_features`, in order."""
    return [f"{col}_{name}" for col in ("rv", "pk", "gk") for name in WINDOWS]


def realized_features(base: pd.DataFrame) -> pd.DataFrame:
    """HAR realised-volatility features per 5m bar from base candles (1m or 5m)."""
    return har_features(per_bar_variances(base))
