"""Timeframe strings ("1m", "5m", "15m", "1h", "4h", "1d") and their lengths."""

from __future__ import annotations

import re

import pandas as pd

_UNITS = {"m": 1, "h": 60, "d": 1440}
_PATTERN = re.compile(r"^(\d+)([mhd])$")


def timeframe_minutes(timeframe: str) -> int:
    """Length of a timeframe in minutes: "5m" -> 5, "1h" -> 60, "4h" -> 240.

    Raises ValueError naming the accepted form for anything else.
    """
    match = _PATTERN.match(str(timeframe).strip())
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(
            f"invalid timeframe {timeframe!r}: use a positive number followed by m, h or d "
            "(e.g. 1m, 5m, 15m, 1h, 4h, 1d)"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """The timeframe as a pandas Timedelta."""
    return pd.Timedelta(minutes=timeframe_minutes(timeframe))


def to_utc(ts: str | pd.Timestamp) -> pd.Timestamp:
    """A tz-aware UTC Timestamp; naive inputs are taken as UTC."""
    stamp = pd.Timestamp(ts)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
