"""Timeframe strings ("1m", "5m", "1h") and nanosecond constants, with no pandas or numpy.

The part of :mod:`forex_diffusion.timeframes` (which re-exports it) that light command-line
paths such as ``forex-diffusion data info`` need. A leaf module.
"""

from __future__ import annotations

import re

NS_PER_SECOND = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MIN
NS_PER_DAY = 24 * NS_PER_HOUR

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
