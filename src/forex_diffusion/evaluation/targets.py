"""Decision times and realised targets on 5m bars (SPEC §3, for the evaluation).

Decision time t = the close of a 5m bar (its open-time label + 5 min). The target for a
horizon of h minutes is r = log(close(t+h) / close(t)), where close(t+h) is the close of the
5m bar ending exactly at t + h; when that bar is missing (a gap) there is no target (NaN).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forex_diffusion.features.targets import compute_targets
from forex_diffusion.features.unified_pipeline import decision_grid
from forex_diffusion.timeframes import to_utc

BAR = pd.Timedelta(minutes=5)


def bar_closes(bars_5m: pd.DataFrame) -> pd.Series:
    """Closes of 5m bars indexed by their CLOSE time (label + 5 min)."""
    return pd.Series(bars_5m["close"].to_numpy(dtype=np.float64), index=bars_5m.index + BAR)


def close_at(bars_5m: pd.DataFrame, times: pd.DatetimeIndex) -> np.ndarray:
    """(N,) close of the 5m bar ending exactly at each time, NaN where there is none."""
    closes = bar_closes(bars_5m)
    pos = closes.index.get_indexer(times)
    values = closes.to_numpy()
    return np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)


def realized_log_returns(
    bars_5m: pd.DataFrame, decision_times: pd.DatetimeIndex, horizons: tuple[int, ...] | list[int]
) -> np.ndarray:
    """Targets r = log(close(t+h) / close(t)) for N decision times × H horizons.

    Uses the training targets' definition (``features.targets.compute_targets``); decision
    times that are not the close of a bar get NaN rows instead of an error.

    Returns:
        (N, H) float64; NaN where the bar ending at t or at t + h is missing.
    """
    close_ns = (bars_5m.index + BAR).as_unit("ns").asi8
    times_ns = pd.DatetimeIndex(decision_times).as_unit("ns").asi8
    out = np.full((len(times_ns), len(horizons)), np.nan)
    present = np.isin(times_ns, close_ns)
    if present.any():
        found = compute_targets(
            close_ns,
            bars_5m["close"].to_numpy(dtype=np.float64),
            times_ns[present],
            [int(h) for h in horizons],
            lam=0.94,  # only the training scales depend on it; they are not used here
        )
        out[present] = found.log_returns
    return out


def select_decision_times(
    bars_5m: pd.DataFrame,
    start: pd.Timestamp | str,
    end: pd.Timestamp | str,
    stride: int,
) -> pd.DatetimeIndex:
    """Decision times in [start, end): closes of existing 5m bars on a clock grid.

    The grid is every ``stride`` × 5 minutes counted from the Unix epoch (stride 12 = every
    full hour), so decision times stay aligned across gaps and runs.
    """
    if stride < 1:
        raise ValueError(f"stride must be ≥ 1, got {stride}")
    close_ns = (bars_5m.index + BAR).as_unit("ns").asi8
    lo, hi = to_utc(start).as_unit("ns").value, to_utc(end).as_unit("ns").value
    chosen = decision_grid(close_ns[(close_ns >= lo) & (close_ns < hi)], stride)
    return pd.DatetimeIndex(pd.to_datetime(chosen, utc=True), name="decision_time")
