"""Wall-clock → UTC conversion for candle files (``--tz``).

Accepted time-zone specifications (case-insensitive for the named rules):

* ``UTC`` (also ``GMT``, ``Z``): the file is already in UTC. Default for tidy, MetaTrader,
  Dukascopy and generic CSV files.
* ``histdata``: the HistData.com clock, default for HistData files. It is *not* the fixed
  UTC−5 HistData documents: the clock runs New-York style, UTC−5 in northern winter and
  UTC−4 in northern summer, switching on the **US** DST dates for data years ≤ 2018 and on the
  **EU** DST dates for data years ≥ 2019 (see ../shared/data/fx/README.md, which checked this
  on weekly opens, US 08:30 releases and known events). The conversion is
  ``UTC = label + 5 h − 1 h × [DST in effect]``, where "DST in effect" is tested at
  ``label + 5 h`` against the switch instants: US 07:00 UTC (spring) / 06:00 UTC (autumn);
  EU 01:00 UTC (both). All switches fall on Sundays while the FX market is closed.
* ``ny-us`` / ``ny-eu``: the same New-York-style clock with the US or EU switch dates forced for
  every year (use when a HistData file does not follow the year rule).
  The switch instants come from the IANA time-zone database (``zoneinfo``): America/New_York
  for the US dates (2nd Sunday of March → 1st Sunday of November from 2007, 1st Sunday of
  April → last Sunday of October 1987–2006), Europe/London for the EU dates (last Sunday of
  March → last Sunday of October, 01:00 UTC, since 1996).
* A fixed offset: ``UTC+2``, ``UTC-05:00``, ``+0200`` (the file's clock is UTC plus that).
* An IANA zone name: ``America/New_York``, ``Europe/Athens``, ``Etc/GMT+5`` (POSIX sign:
  Etc/GMT+5 is UTC−5). Local times that do not exist or are ambiguous at a DST switch are
  reported as bad rows.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forex_diffusion.errors import DataError
from forex_diffusion.timeframes import NS_PER_HOUR, NS_PER_MIN

_FIXED = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
_UTC_NAMES = {"utc", "gmt", "z", "etc/utc", "etc/gmt", "utc+0", "utc-0"}
_NY_RULES = {"histdata", "ny-us", "ny-eu"}
# The switch dates of each calendar, read from the IANA database: a zone that follows it and
# that zone's standard offset (wall clock minus UTC).
_DST_ZONES = {
    "us": (zoneinfo.ZoneInfo("America/New_York"), -5 * NS_PER_HOUR),
    "eu": (zoneinfo.ZoneInfo("Europe/London"), 0),
}


def histdata_rule(year: int) -> str:
    """Which DST dates the HistData clock follows in ``year``: "us" (≤ 2018) or "eu" (≥ 2019)."""
    return "us" if year <= 2018 else "eu"


@dataclass(frozen=True)
class Converted:
    """``ns``: (n,) int64 UTC nanoseconds; ``valid``: (n,) bool (False: no such local time)."""

    ns: np.ndarray
    valid: np.ndarray


def _dst_in_effect(instants_ns: np.ndarray, which: str) -> np.ndarray:
    """(n,) bool: whether the US or EU daylight-saving time is in effect at each UTC instant."""
    zone, standard_ns = _DST_ZONES[which]
    utc = pd.DatetimeIndex(instants_ns.astype("datetime64[ns]"), tz="UTC")
    wall = utc.tz_convert(zone).tz_localize(None).as_unit("ns").asi8
    return (wall - instants_ns) != standard_ns


def _ny_style(local_ns: np.ndarray, rule: str) -> np.ndarray:
    standard = local_ns + 5 * NS_PER_HOUR  # the instant if no DST were in effect
    years = standard.astype("datetime64[ns]").astype("datetime64[Y]").astype(np.int64) + 1970
    dst = np.zeros(len(local_ns), dtype=bool)
    for year in np.unique(years):
        which = histdata_rule(int(year)) if rule == "histdata" else rule[3:]
        sel = years == year
        dst[sel] = _dst_in_effect(standard[sel], which)
    return standard - dst.astype(np.int64) * NS_PER_HOUR


def check_tz(tz: str) -> str:
    """Return ``tz`` if it is an accepted specification, else raise DataError listing them."""
    spec = tz.strip()
    low = spec.lower()
    if low in _UTC_NAMES or low in _NY_RULES or _FIXED.match(spec):
        return spec
    try:
        zoneinfo.ZoneInfo(spec)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise DataError(
            f"unknown time zone {tz!r}: use UTC, histdata, ny-us, ny-eu, a fixed offset such as "
            "UTC+2 or -05:00, or an IANA name such as America/New_York or Etc/GMT+5"
        ) from exc
    return spec


def wall_clock_to_utc(local_ns: np.ndarray, tz: str) -> Converted:
    """Convert naive wall-clock nanoseconds (n,) in clock ``tz`` to UTC nanoseconds (n,)."""
    spec = check_tz(tz)
    low = spec.lower()
    ok = np.ones(len(local_ns), dtype=bool)
    if low in _UTC_NAMES:
        return Converted(local_ns.copy(), ok)
    if low in _NY_RULES:
        return Converted(_ny_style(local_ns, low), ok)
    fixed = _FIXED.match(spec)
    if fixed:
        sign = 1 if fixed.group(1) == "+" else -1
        minutes = int(fixed.group(2)) * 60 + int(fixed.group(3) or 0)
        return Converted(local_ns - sign * minutes * NS_PER_MIN, ok)
    idx = pd.DatetimeIndex(local_ns.astype("datetime64[ns]"))
    localized = idx.tz_localize(spec, ambiguous="NaT", nonexistent="NaT")
    valid = ~np.asarray(localized.isna())
    utc = localized.tz_convert("UTC").tz_localize(None).as_unit("ns").asi8.copy()
    utc[~valid] = 0
    return Converted(utc, valid)
