"""Multi-horizon targets, their causal volatility scale, and conversions back to prices.

For a decision time t (the close of a 5m bar) and a horizon h minutes:

* ``r = log(close(t+h) / close(t))`` where close(t) is the close of the 5m bar ending at t
  and close(t+h) the close of the 5m bar ending EXACTLY at t+h. If that bar does not exist
  (weekend, holiday, hole in the data) the sample has no target for h (NaN).
* ``scale_h = sqrt(EWMA variance of 5m log returns known at t) * sqrt(h / 5)``; the model
  learns ``r / scale_h``. The EWMA (``lambda`` = features.vol_ewma_lambda) uses the returns
  of the 5m bars that closed at or before t only.
* With ``data.target_scale: seasonal_ewma`` instead ``scale_h`` = the seasonal-EWMA σ forecast
  of the h-minute return at t (``features.volatility.SeasonalEwma.horizon_std``, the
  evaluation's ``ewma_seasonal`` baseline with the model's training-range fit), from the 5m
  returns of bars closed at or before t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forex_diffusion.features.volatility import BAR_NS, SeasonalEwma, returns_of_bars
from forex_diffusion.timeframes import NS_PER_MIN

MIN_SCALE = 1e-10  # floor of the volatility scale (log-return units), avoids division by 0


def close_to_close_log_returns(close: np.ndarray) -> np.ndarray:
    """log(close_i / close_{i-1}) of consecutive bars; NaN for the first. (n,) -> (n,)"""
    c = np.asarray(close, dtype=np.float64)
    out = np.empty(len(c))
    if len(c):
        out[0] = np.nan
        out[1:] = np.log(c[1:] / c[:-1])
    return out


def ewma_variance(returns: np.ndarray, lam: float) -> np.ndarray:
    """Causal EWMA of squared returns: ``sum_k lam^k r_{t-k}^2 / sum_k lam^k`` over the
    returns available up to t (leading NaNs skipped; NaN before the first return). (n,)"""
    r2 = pd.Series(np.asarray(returns, dtype=np.float64) ** 2)
    return r2.ewm(alpha=1.0 - lam, adjust=True).mean().to_numpy()


def horizon_scales(variance_at_t: np.ndarray, horizons: Sequence[int]) -> np.ndarray:
    """Volatility scale per sample and horizon: sqrt(var_5m) * sqrt(h / 5). (N,) -> (N, H)"""
    base = np.sqrt(np.asarray(variance_at_t, dtype=np.float64))[:, None]
    factor = np.sqrt(np.asarray(horizons, dtype=np.float64) / 5.0)[None, :]
    return np.maximum(base * factor, MIN_SCALE)


@dataclass(frozen=True)
class HorizonTargets:
    """Targets of N decision times for H horizons (float64).

    log_returns: (N, H), NaN where the bar ending at t+h does not exist.
    scales: (N, H) causal volatility scales.
    last_close: (N,) close(t).
    """

    log_returns: np.ndarray
    scales: np.ndarray
    last_close: np.ndarray

    @property
    def scaled(self) -> np.ndarray:
        """r / scale (N, H); NaN where there is no target."""
        return self.log_returns / self.scales

    @property
    def missing(self) -> np.ndarray:
        """(N, H) bool: the horizon's bar does not exist."""
        return np.isnan(self.log_returns)


def compute_targets(
    close_ns: np.ndarray,
    close: np.ndarray,
    decision_ns: np.ndarray,
    horizons: Sequence[int],
    lam: float,
    seasonal: SeasonalEwma | None = None,
) -> HorizonTargets:
    """Targets for decision times given the complete 5m bars.

    Args:
        close_ns: (M,) int64 close times (open + 5 min, ns) of the 5m bars, increasing.
        close: (M,) close prices of those bars.
        decision_ns: (N,) int64 decision times; each must equal one of ``close_ns``.
        horizons: H horizons in minutes.
        lam: EWMA decay of the variance of 5m log returns.
        seasonal: when given, the scales are its horizon σ forecasts instead of the EWMA's.

    Raises:
        ValueError: a decision time is not the close of one of the bars.
    """
    close_ns = np.asarray(close_ns, dtype=np.int64)
    close = np.asarray(close, dtype=np.float64)
    decision_ns = np.asarray(decision_ns, dtype=np.int64)
    at = np.searchsorted(close_ns, decision_ns)
    ok = at < len(close_ns)
    ok[ok] = close_ns[at[ok]] == decision_ns[ok]
    if not ok.all():
        bad = pd.Timestamp(int(decision_ns[~ok][0]), tz="UTC")
        raise ValueError(f"decision time {bad} is not the close of a 5m bar in the data")
    last = close[at]
    out = np.full((len(decision_ns), len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        when = decision_ns + h * NS_PER_MIN
        k = np.searchsorted(close_ns, when)
        k_safe = np.minimum(k, len(close_ns) - 1)
        exists = (k < len(close_ns)) & (close_ns[k_safe] == when)
        out[exists, j] = np.log(close[k_safe[exists]] / last[exists])
    if seasonal is None:
        variance = ewma_variance(close_to_close_log_returns(close), lam)
        scales = horizon_scales(variance[at], horizons)
    else:
        scales = seasonal_horizon_scales(close_ns, close, decision_ns, horizons, seasonal)
    return HorizonTargets(out, scales, last)


def seasonal_horizon_scales(
    close_ns: np.ndarray,
    close: np.ndarray,
    decision_ns: np.ndarray,
    horizons: Sequence[int],
    seasonal: SeasonalEwma,
) -> np.ndarray:
    """Seasonal-EWMA σ of each horizon's log return at each decision time. (N, H)

    Args:
        close_ns, close: (M,) close times and closes of the complete 5m bars, increasing.
        decision_ns: (N,) decision times (ns); each uses the bars closed by then only.
        horizons: H horizons in minutes (multiples of 5).
    """
    rs = returns_of_bars(np.asarray(close_ns, dtype=np.int64) - BAR_NS, close)
    steps = np.asarray(horizons, dtype=np.int64) // 5
    std = seasonal.horizon_std(rs, np.asarray(decision_ns, dtype=np.int64), steps)
    return np.maximum(std, MIN_SCALE)


def scaled_to_log_return(scaled: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Undo the training scaling: r = z * scale (broadcasting)."""
    return np.asarray(scaled, dtype=np.float64) * np.asarray(scales, dtype=np.float64)


def log_return_to_price_change(log_return: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """close(t+h) - close(t) = close(t) * (exp(r) - 1), in price units (broadcasting)."""
    lc = np.asarray(last_close, dtype=np.float64)
    return lc * np.expm1(np.asarray(log_return, dtype=np.float64))


def log_return_to_pips(
    log_return: np.ndarray, last_close: np.ndarray, pip_size: float
) -> np.ndarray:
    """The price change expressed in pips (``asset.pip_size`` price units per pip)."""
    return log_return_to_price_change(log_return, last_close) / pip_size


def log_return_to_price(log_return: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """Price level close(t) * exp(r)."""
    lc = np.asarray(last_close, dtype=np.float64)
    return lc * np.exp(np.asarray(log_return, dtype=np.float64))


def price_to_log_return(price: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """Inverse of :func:`log_return_to_price`."""
    return np.log(np.asarray(price, dtype=np.float64) / np.asarray(last_close, dtype=np.float64))


def pips_to_log_return(pips: np.ndarray, last_close: np.ndarray, pip_size: float) -> np.ndarray:
    """Inverse of :func:`log_return_to_pips`."""
    lc = np.asarray(last_close, dtype=np.float64)
    return np.log1p(np.asarray(pips, dtype=np.float64) * pip_size / lc)
