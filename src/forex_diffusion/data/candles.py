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


def timeframe_label(minutes: float) -> str:
    """A spacing in minutes as a timeframe-like label: 1 -> "1m", 60 -> "1h", 0.5 -> "30s"."""
    if minutes < 1:
        return f"{minutes * 60:g}s"
    if minutes % 1440 == 0:
        return f"{minutes / 1440:g}d"
    if minutes % 60 == 0:
        return f"{minutes / 60:g}h"
    return f"{minutes:g}m"


def infer_base_timeframe(open_ns: np.ndarray, where: str = "candles") -> str:
    """The bar interval of base candles from their open times: the modal (most common) spacing
    between consecutive bars; "1m" for fewer than two bars.

    A modal spacing of 1 minute, or of 2 to 4 minutes (sparse 1-minute bars), gives "1m"; 5
    minutes gives "5m" when every bar opens on the 5-minute grid and none is closer than 5
    minutes.

    Args:
        open_ns: (n,) int64 bar open times in ns since the epoch, increasing.
        where: what the candles are, for messages.

    Raises:
        DataError: any other interval (hourly or daily candles, second data, 5-minute bars off
            the grid or mixed with closer bars), saying what was found.
    """
    ns = np.asarray(open_ns, dtype=np.int64)
    steps = np.diff(ns)
    steps = steps[steps > 0]
    if len(steps) == 0:
        return "1m"
    values, counts = np.unique(steps, return_counts=True)
    k = int(np.argmax(counts))
    mode = int(values[k])
    found = (
        f"the bars are {timeframe_label(mode / NS_PER_MIN)} apart (the most common spacing, "
        f"{int(counts[k]):,} of {len(steps):,} consecutive pairs)"
    )
    if NS_PER_MIN <= mode < _FIVE_MIN_NS and mode % NS_PER_MIN == 0:
        return "1m"
    if mode == _FIVE_MIN_NS:
        off_grid = np.flatnonzero(ns % _FIVE_MIN_NS)
        closer = int((steps < _FIVE_MIN_NS).sum())
        if not len(off_grid) and not closer:
            return "5m"
        problem = (
            f"{len(off_grid):,} bar(s) off the 5-minute grid, first at "
            f"{pd.Timestamp(int(ns[off_grid[0]]), tz='UTC')} (bars are labelled by open time)"
            if len(off_grid)
            else f"{closer:,} pair(s) closer than 5 minutes (1m and 5m bars mixed)"
        )
        raise DataError(f"{where}: {found}, but {problem}; base candles must be 1m or 5m bars")
    raise DataError(
        f"{where}: {found}; base candles must be 1-minute or 5-minute bars. Use the 1m (M1) or "
        "5m export of this data; coarser timeframes are built from the base bars."
    )


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


def _as_float(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """``frame`` as float64; a value that is not a number is a DataError naming it."""
    try:
        return frame.astype("float64")
    except (ValueError, TypeError):
        pass
    for col in frame.columns:
        raw = frame[col]
        num = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy() & raw.notna().to_numpy())
        if len(bad):
            raise DataError(
                f"{where}: non-numeric value {raw.iloc[bad[0]]!r} in column '{col}' at "
                f"{frame.index[bad[0]]} ({len(bad)} such value(s)); prices and volume must be "
                "numbers"
            )
    raise DataError(f"{where}: the candle columns cannot be converted to numbers")


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
    if tuple(out.columns) != CANDLE_COLUMNS:
        out = out[list(CANDLE_COLUMNS)]
    out = _as_float(out, where)
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
    values = out.to_numpy()  # (n, 5): the columns are CANDLE_COLUMNS in order
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise DataError(
            f"{where}: NaN or infinite values in {_describe(out.index, np.flatnonzero(bad))}"
        )
    prices = values[:, : len(OHLC)]
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
