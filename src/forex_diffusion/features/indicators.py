"""Scale-free, causal feature families, one small pure function each.

Every function takes the bars of ONE timeframe (a frame indexed by bar open time with
open/high/low/close[/volume/n_base]) or one of its columns, and returns a frame with the same
index. Row i depends only on rows <= i (causal). Leading rows that cannot be computed yet are
NaN; the pipeline drops a family's warm-up (see ``unified_pipeline.family_warmup``).
No feature is an absolute price level: everything is a log ratio, a ratio of price
differences, an oscillator, a calendar code or a flag, so multiplying all prices by a
constant leaves every feature unchanged (up to rounding).

Conventions (the tests hold reference loop implementations of exactly these):
* EMA: ``ema_t = ema_{t-1} + 2/(span+1) * (x_t - ema_{t-1})`` seeded with the first value.
* Wilder smoothing (RSI, ATR): seeded with the simple mean of the first ``window`` values,
  then ``s_t = s_{t-1} + (x_t - s_{t-1}) / window``.
* Rolling statistics include the current bar; standard deviations use ddof=0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forex_diffusion.timeframes import NS_PER_DAY

_WEEK_DAYS = 7.0
# (time zone, local open hour, local close hour) of the three main FX sessions.
SESSIONS: dict[str, tuple[str, float, float]] = {
    "tokyo": ("Asia/Tokyo", 9.0, 18.0),
    "london": ("Europe/London", 8.0, 17.0),
    "newyork": ("America/New_York", 8.0, 17.0),
}


def _safe_ratio(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """num / den where den != 0 (and both finite), ``fill`` where den == 0; NaN stays NaN."""
    out = np.full(num.shape, np.nan)
    valid = np.isfinite(num) & np.isfinite(den)
    nonzero = valid & (den != 0)
    out[nonzero] = num[nonzero] / den[nonzero]
    out[valid & (den == 0)] = fill
    return out


def _prev_close(close: np.ndarray) -> np.ndarray:
    prev = np.empty_like(close)
    prev[0] = np.nan
    prev[1:] = close[:-1]
    return prev


def ema(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average seeded with the first non-NaN value. (n,) -> (n,)"""
    return pd.Series(values).ewm(span=span, adjust=False).mean().to_numpy()


def wilder_smooth(values: np.ndarray, window: int, first: int) -> np.ndarray:
    """Wilder's smoothing of ``values`` that are valid from index ``first``.

    The value at ``first + window - 1`` is the mean of the first ``window`` valid values;
    afterwards ``s_t = s_{t-1} + (x_t - s_{t-1}) / window``. Earlier rows are NaN. (n,) -> (n,)
    """
    out = np.full(len(values), np.nan)
    seed_at = first + window - 1
    if seed_at >= len(values):
        return out
    tail = values[seed_at:].astype(np.float64, copy=True)
    tail[0] = values[first : seed_at + 1].mean()
    out[seed_at:] = pd.Series(tail).ewm(alpha=1.0 / window, adjust=False).mean().to_numpy()
    return out


def true_range(bars: pd.DataFrame) -> np.ndarray:
    """max(high - low, |high - prev close|, |low - prev close|); NaN on the first bar. (n,)"""
    high = bars["high"].to_numpy(dtype=np.float64)
    low = bars["low"].to_numpy(dtype=np.float64)
    prev = _prev_close(bars["close"].to_numpy(dtype=np.float64))
    return np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))


def log_returns(bars: pd.DataFrame) -> pd.DataFrame:
    """Log of open/high/low/close against the previous bar's close.

    Columns r_open, r_high, r_low, r_close; the first row is NaN.
    """
    prev = _prev_close(bars["close"].to_numpy(dtype=np.float64))
    log_prev = np.log(prev)
    data = {
        f"r_{col}": np.log(bars[col].to_numpy(dtype=np.float64)) - log_prev
        for col in ("open", "high", "low", "close")
    }
    return pd.DataFrame(data, index=bars.index)


def range_body(bars: pd.DataFrame) -> pd.DataFrame:
    """hl_range = log(high / low) and body = log(close / open) of each bar (no warm-up)."""
    o, h, low, c = (
        bars[col].to_numpy(dtype=np.float64) for col in ("open", "high", "low", "close")
    )
    return pd.DataFrame({"hl_range": np.log(h / low), "body": np.log(c / o)}, index=bars.index)


def realized_vol(close: pd.Series, windows: Sequence[int]) -> pd.DataFrame:
    """rv_{w}: sqrt of the mean squared close-to-close log return over the last w bars."""
    c = close.to_numpy(dtype=np.float64)
    r2 = pd.Series(np.log(c / _prev_close(c)) ** 2)
    data = {f"rv_{w}": np.sqrt(r2.rolling(w, min_periods=w).mean().to_numpy()) for w in windows}
    return pd.DataFrame(data, index=close.index)


def atr(bars: pd.DataFrame, window: int) -> pd.DataFrame:
    """atr_{window}: Wilder's average true range divided by the close."""
    value = wilder_smooth(true_range(bars), window, first=1)
    return pd.DataFrame(
        {f"atr_{window}": value / bars["close"].to_numpy(dtype=np.float64)}, index=bars.index
    )


def rsi(close: pd.Series, window: int) -> pd.DataFrame:
    """rsi_{window}: Wilder's relative strength index in [0, 100] (50 when flat)."""
    c = close.to_numpy(dtype=np.float64)
    delta = c - _prev_close(c)
    gain = wilder_smooth(np.where(delta > 0, delta, 0.0), window, first=1)
    loss = wilder_smooth(np.where(delta < 0, -delta, 0.0), window, first=1)
    total = gain + loss
    value = 100.0 * _safe_ratio(gain, total, fill=0.5)
    return pd.DataFrame({f"rsi_{window}": value}, index=close.index)


def bollinger(close: pd.Series, window: int, k: float) -> pd.DataFrame:
    """Bollinger %b (0.5 when the band has zero width) and bandwidth (2 k std / mean)."""
    c = close.to_numpy(dtype=np.float64)
    roll = pd.Series(c).rolling(window, min_periods=window)
    mean = roll.mean().to_numpy()
    std = roll.std(ddof=0).to_numpy()
    std = np.where(std <= 1e-12 * mean, 0.0, std)
    pctb = 0.5 + _safe_ratio(c - mean, 2.0 * k * std, fill=0.0)
    return pd.DataFrame({"bb_pctb": pctb, "bb_width": 2.0 * k * std / mean}, index=close.index)


def macd(bars: pd.DataFrame, fast: int, slow: int, signal: int, atr_window: int) -> pd.DataFrame:
    """MACD line (EMA_fast - EMA_slow of the close) and its signal EMA, both divided by ATR.

    Dividing by the average true range (price units) makes them volatility-normalised and
    scale-free; 0 where the ATR is 0.
    """
    c = bars["close"].to_numpy(dtype=np.float64)
    line = ema(c, fast) - ema(c, slow)
    sig = ema(line, signal)
    vol = wilder_smooth(true_range(bars), atr_window, first=1)
    return pd.DataFrame(
        {"macd": _safe_ratio(line, vol, 0.0), "macd_signal": _safe_ratio(sig, vol, 0.0)},
        index=bars.index,
    )


def ema_distance(close: pd.Series, windows: Sequence[int]) -> pd.DataFrame:
    """ema_dist_{w} = log(close / EMA_w(close))."""
    c = close.to_numpy(dtype=np.float64)
    data = {f"ema_dist_{w}": np.log(c / ema(c, w)) for w in windows}
    return pd.DataFrame(data, index=close.index)


def donchian(bars: pd.DataFrame, window: int) -> pd.DataFrame:
    """Position of the close in the last-``window``-bar high/low channel (0.5 if flat) and
    the channel width log(highest high / lowest low)."""
    c = bars["close"].to_numpy(dtype=np.float64)
    hh = bars["high"].rolling(window, min_periods=window).max().to_numpy(dtype=np.float64)
    ll = bars["low"].rolling(window, min_periods=window).min().to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {"donchian_pos": _safe_ratio(c - ll, hh - ll, 0.5), "donchian_width": np.log(hh / ll)},
        index=bars.index,
    )


def calendar(index: pd.DatetimeIndex) -> pd.DataFrame:
    """Hour-of-day and day-of-week of the bar open (UTC) on the unit circle."""
    ns = index.as_unit("ns").asi8
    day_frac = (ns % NS_PER_DAY) / NS_PER_DAY
    week_frac = (index.day_of_week.to_numpy() + day_frac) / _WEEK_DAYS
    return pd.DataFrame(
        {
            "hour_sin": np.sin(2 * np.pi * day_frac),
            "hour_cos": np.cos(2 * np.pi * day_frac),
            "dow_sin": np.sin(2 * np.pi * week_frac),
            "dow_cos": np.cos(2 * np.pi * week_frac),
        },
        index=index,
    )


def sessions(index: pd.DatetimeIndex) -> pd.DataFrame:
    """1.0 when the bar opens inside the Tokyo / London / New York session (local time, DST
    aware), else 0.0."""
    data = {}
    for name, (zone, start, end) in SESSIONS.items():
        local = index.tz_convert(zone)
        hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
        data[f"session_{name}"] = ((hour >= start) & (hour < end)).astype(np.float64)
    return pd.DataFrame(data, index=index)


def gap(
    index: pd.DatetimeIndex,
    timeframe_minutes: int,
    n_base: np.ndarray | None = None,
    base_minutes: int = 1,
) -> pd.DataFrame:
    """gap_log = log(time since the previous bar's open / bar length) (0 for adjacent bars,
    NaN on the first) and bar_fill = share of the bar's base bars that exist (1 if unknown)."""
    ns = index.as_unit("ns").asi8.astype(np.float64)
    delta = np.empty(len(ns))
    delta[0] = np.nan
    delta[1:] = np.diff(ns) / (timeframe_minutes * 60e9)
    if n_base is None:
        fill = np.ones(len(ns))
    else:
        fill = np.minimum(
            np.asarray(n_base, dtype=np.float64) * base_minutes / timeframe_minutes, 1
        )
    return pd.DataFrame({"gap_log": np.log(delta), "bar_fill": fill}, index=index)


def volume(vol: pd.Series, window: int) -> pd.DataFrame:
    """volume_ratio = log(volume / mean of the non-zero volumes of the last ``window`` bars)
    on bars with volume > 0 (0 elsewhere) and volume_present = 1.0 where volume > 0."""
    v = vol.to_numpy(dtype=np.float64)
    present = v > 0
    sums = pd.Series(v).rolling(window, min_periods=window).sum().to_numpy()
    counts = pd.Series(present.astype(np.float64)).rolling(window, min_periods=window).sum()
    mean = _safe_ratio(sums, counts.to_numpy(), fill=0.0)
    ratio = np.where(np.isnan(mean), np.nan, 0.0)
    ok = present & (mean > 0)
    ratio[ok] = np.log(v[ok] / mean[ok])
    return pd.DataFrame(
        {"volume_ratio": ratio, "volume_present": present.astype(np.float64)}, index=vol.index
    )
