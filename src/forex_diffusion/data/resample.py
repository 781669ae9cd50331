"""Causal resampling of base candles to coarser timeframes (SPEC §3).

A bar is labelled by its open time L and covers [L, L + tf). It exists only once closed:
it is returned when L + tf <= ``asof`` (by default, the close of the last base bar).
Gaps stay gaps: a bin without base bars produces no row, nothing is filled.
Bins are anchored at the Unix epoch (4h bars open at 00, 04, 08, ... UTC).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forex_diffusion.data.candles import CANDLE_COLUMNS
from forex_diffusion.timeframes import NS_PER_MIN, timeframe_minutes, to_utc


def _bar_starts(ns: np.ndarray, tf_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The bars of length ``tf_ns`` that base bars opening at ``ns`` (n,) (increasing, not
    empty) fall in: (k,) index of each bar's first base bar, (k,) each bar's open time in ns."""
    keys = ns // tf_ns
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return starts, keys[starts] * tf_ns


def closed_bar_closes(
    open_ns: np.ndarray, timeframe: str, base_timeframe: str = "1m"
) -> np.ndarray:
    """Close times of the ``timeframe`` bars formed by base bars opening at ``open_ns`` that
    have closed by the close of the last base bar: ``resample_ohlc(df, timeframe,
    base_timeframe).index + timeframe`` for a frame with these open times, without building
    the frame.

    Args:
        open_ns: (n,) int64 base-bar open times in ns, strictly increasing.

    Returns:
        (k,) int64 close times in ns, increasing.
    """
    tf_ns = timeframe_minutes(timeframe) * NS_PER_MIN
    ns = np.asarray(open_ns, dtype=np.int64)
    if len(ns) == 0:
        return np.zeros(0, np.int64)
    _, labels = _bar_starts(ns, tf_ns)
    closes = labels + tf_ns
    return closes[closes <= ns[-1] + timeframe_minutes(base_timeframe) * NS_PER_MIN]


def resample_ohlc(
    df: pd.DataFrame,
    timeframe: str,
    base_timeframe: str = "1m",
    asof: pd.Timestamp | None = None,
    include_partial: bool = False,
) -> pd.DataFrame:
    """Aggregate a validated candle frame to ``timeframe`` bars.

    Args:
        df: candles (UTC open-time index, strictly increasing), columns open/high/low/close/volume.
        timeframe: target timeframe, a multiple of ``base_timeframe`` ("5m", "1h", ...).
        base_timeframe: the bar length of ``df``.
        asof: time up to which data is known; bars closing after it are dropped. Defaults
            to the close of the last base bar. Base bars opening at or after ``asof`` are ignored.
        include_partial: keep the trailing bar that has not closed yet by ``asof``.

    Returns:
        DataFrame indexed by bar open time, columns open/high/low/close/volume plus
        ``n_base`` (how many base bars formed it).
    """
    tf_min = timeframe_minutes(timeframe)
    base_min = timeframe_minutes(base_timeframe)
    if tf_min % base_min:
        raise ValueError(
            f"timeframe {timeframe} is not a multiple of the base timeframe {base_timeframe}"
        )
    ns = df.index.as_unit("ns").asi8  # pandas 3 indexes may be in µs or s; the maths is in ns
    if asof is not None:
        asof_ns = to_utc(asof).value
        keep = ns < asof_ns
        df, ns = df[keep], ns[keep]
    elif len(ns):
        asof_ns = int(ns[-1]) + base_min * NS_PER_MIN
    else:
        asof_ns = 0
    cols = [c for c in CANDLE_COLUMNS if c in df.columns]
    if len(ns) == 0:
        return pd.DataFrame(
            columns=[*cols, "n_base"], index=pd.DatetimeIndex([], tz="UTC", name=df.index.name)
        )
    tf_ns = tf_min * NS_PER_MIN
    starts, labels = _bar_starts(ns, tf_ns)
    ends = np.r_[starts[1:], len(ns)] - 1
    o = df["open"].to_numpy()[starts]
    h = np.maximum.reduceat(df["high"].to_numpy(), starts)
    low = np.minimum.reduceat(df["low"].to_numpy(), starts)
    c = df["close"].to_numpy()[ends]
    data = {"open": o, "high": h, "low": low, "close": c}
    if "volume" in df.columns:
        data["volume"] = np.add.reduceat(df["volume"].to_numpy(), starts)
    data["n_base"] = ends - starts + 1
    out = pd.DataFrame(
        data, index=pd.DatetimeIndex(pd.to_datetime(labels, utc=True), name=df.index.name)
    )
    if not include_partial:
        out = out[labels + tf_ns <= asof_ns]
    return out
