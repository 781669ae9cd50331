"""The candle frame contract (SPEC §3) and its validation.

A candle frame is a pandas DataFrame indexed by a tz-aware UTC ``DatetimeIndex`` of bar
**open** times, strictly increasing, with float columns open/high/low/close/volume.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forex_diffusion.errors import DataError
from forex_diffusion.timeframes import NS_PER_MIN

OHLC = ("open", "high", "low", "close")
CANDLE_COLUMNS = (*OHLC, "volume")
_FIVE_MIN_NS = 5 * NS_PER_MIN


def infer_base_timeframe(open_ns: np.ndarray) -> str:
    """ "5m" when every bar opens on the 5-minute grid and bars are >= 5 min apart, else "1m".

    Args:
        open_ns: (n,) int64 bar open times in ns since the epoch, increasing.
    """
    ns = np.asarray(open_ns, dtype=np.int64)
    if len(ns) > 1 and not (ns % _FIVE_MIN_NS).any() and np.diff(ns).min() >= _FIVE_MIN_NS:
        return "5m"
    return "1m"


def _describe(index: pd.Index, positions: np.ndarray, limit: int = 3) -> str:
    shown = ", ".join(str(index[p]) for p in positions[:limit])
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return f"{len(positions)} bar(s), first at {shown}{more}"


def candle_frame(ts: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """Candle frame from (n,) int64 ns UTC open times and (n, 5) open/high/low/close/volume."""
    index = pd.DatetimeIndex(ts.astype("datetime64[ns]"), name="timestamp").tz_localize("UTC")
    return pd.DataFrame(
        {c: values[:, j] for j, c in enumerate(CANDLE_COLUMNS)}, index=index, copy=False
    )


def validate_candles(
    df: pd.DataFrame, where: str = "candles", require_volume: bool = False
) -> pd.DataFrame:
    """Check ``df`` against the candle contract and return it with float64 columns and a
    nanosecond-resolution UTC index (pandas 3 parses times to µs or s; code that uses
    ``index.asi8`` relies on ns).

    Raises:
        DataError: naming ``where`` and the first offending bars for: a missing or
            non-UTC DatetimeIndex, missing columns, an empty frame, unsorted or duplicate
            timestamps, NaN/inf, non-positive prices, or inconsistent OHLC.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{where}: expected a pandas DataFrame of candles, got {type(df).__name__}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError(
            f"{where}: the index must be a DatetimeIndex of bar open times (UTC); "
            f"got {type(df.index).__name__}. Use df.set_index(pd.to_datetime(df['timestamp'], utc=True))."
        )
    if df.index.tz is None:
        raise DataError(
            f"{where}: timestamps are naive; localize them to UTC (df.tz_localize('UTC'))."
        )
    missing = [c for c in OHLC if c not in df.columns]
    if require_volume and "volume" not in df.columns:
        missing.append("volume")
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; have {list(df.columns)}")
    if len(df) == 0:
        raise DataError(f"{where}: no candles (empty frame)")
    out = df.copy()
    if str(out.index.tz) != "UTC":
        out.index = out.index.tz_convert("UTC")
    if out.index.unit != "ns":
        out.index = out.index.as_unit("ns")
    if "volume" not in out.columns:
        out["volume"] = 0.0
    out = out[list(CANDLE_COLUMNS)].astype("float64")
    ns = out.index.asi8
    steps = np.diff(ns)
    if (steps < 0).any():
        raise DataError(
            f"{where}: timestamps are not sorted ({_describe(out.index, np.flatnonzero(steps < 0) + 1)} "
            "come before their predecessor); sort with df.sort_index()."
        )
    if (steps == 0).any():
        raise DataError(
            f"{where}: duplicate timestamps ({_describe(out.index, np.flatnonzero(steps == 0) + 1)}); "
            "drop them with df[~df.index.duplicated()]."
        )
    values = out[list(CANDLE_COLUMNS)].to_numpy()
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise DataError(
            f"{where}: NaN or infinite values in {_describe(out.index, np.flatnonzero(bad))}"
        )
    prices = out[list(OHLC)].to_numpy()
    bad = (prices <= 0).any(axis=1)
    if bad.any():
        raise DataError(
            f"{where}: non-positive prices in {_describe(out.index, np.flatnonzero(bad))}"
        )
    o, h, low, c = prices.T
    bad = (h < np.maximum(o, c)) | (low > np.minimum(o, c)) | (h < low)
    if bad.any():
        raise DataError(
            f"{where}: inconsistent OHLC (high below open/close or low above them) in "
            f"{_describe(out.index, np.flatnonzero(bad))}"
        )
    return out
