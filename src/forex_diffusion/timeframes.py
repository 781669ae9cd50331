"""Time units of the package: timeframe strings ("1m", "5m", "15m", "1h", "4h", "1d"),
nanosecond constants, UTC timestamps and the half-open UTC range type.

A leaf module: it imports only the pandas-free :mod:`forex_diffusion.timeframe_units` (whose
names it re-exports), so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forex_diffusion.timeframe_units import NS_PER_DAY as NS_PER_DAY
from forex_diffusion.timeframe_units import NS_PER_HOUR as NS_PER_HOUR
from forex_diffusion.timeframe_units import NS_PER_MIN as NS_PER_MIN
from forex_diffusion.timeframe_units import NS_PER_SECOND as NS_PER_SECOND
from forex_diffusion.timeframe_units import timeframe_minutes as timeframe_minutes

ONE_DAY = pd.Timedelta(days=1)


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """The timeframe as a pandas Timedelta."""
    return pd.Timedelta(minutes=timeframe_minutes(timeframe))


def to_utc(ts: str | pd.Timestamp) -> pd.Timestamp:
    """A tz-aware UTC Timestamp; naive inputs are taken as UTC."""
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def fmt_time(t: pd.Timestamp, end: bool = False) -> str:
    """Midnight as a date (as the day before for an ``end``), else date and time (UTC)."""
    if t == t.normalize():
        return (t - ONE_DAY if end else t).strftime("%Y-%m-%d")
    return t.strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class UtcRange:
    """A half-open UTC interval [start, end) with a name for messages.

    ``start`` and ``end`` are stored as tz-aware UTC nanosecond Timestamps (naive inputs are
    taken as UTC).
    """

    name: str
    start: pd.Timestamp
    end: pd.Timestamp

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_utc(self.start).as_unit("ns"))
        object.__setattr__(self, "end", to_utc(self.end).as_unit("ns"))

    @property
    def start_ns(self) -> int:
        return int(self.start.value)

    @property
    def end_ns(self) -> int:
        return int(self.end.value)

    def overlaps(self, other: UtcRange) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, t: Any) -> bool:
        """Whether the instant ``t`` (naive: UTC) lies in [start, end)."""
        return bool(self.start <= to_utc(t) < self.end)

    def contains_ns(self, ns: np.ndarray) -> np.ndarray:
        """(n,) bool: which of the (n,) int64 ns instants lie in [start, end)."""
        return np.asarray((ns >= self.start_ns) & (ns < self.end_ns))

    def label(self) -> str:
        """ "2023-07-01 → 2023-12-31": a midnight end is shown as the (inclusive) day before."""
        return f"{fmt_time(self.start)} → {fmt_time(self.end, end=True)}"

    def __str__(self) -> str:
        return f"{self.name} {self.label()}"
