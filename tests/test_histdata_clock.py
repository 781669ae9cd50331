"""The HistData clock checked against something the importer does not compute: the market itself.

The FX week opens on Sunday at 17:00 New York time. Real bars (true UTC, ../shared/data/fx) are
written out with HistData labels derived from the IANA time-zone database (America/New_York for
the US calendar of years ≤ 2018; Europe/London's summer time, which switches at 01:00 UTC on the
EU dates, for years ≥ 2019), imported back through the HistData reader, and then every week's
first bar must sit at Sunday 17:00 in New York, including the weeks around each DST change.
A wrong calendar, a wrong sign or a fixed offset moves whole weeks by an hour and fails.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.data.importers import read_candles_file


def _dst_flag(utc: pd.DatetimeIndex, year: int) -> np.ndarray:
    zone = ZoneInfo("America/New_York" if year <= 2018 else "Europe/London")
    return np.array([bool(t.astimezone(zone).dst()) for t in utc.to_pydatetime()])


def _histdata_file(fx_dir: Path, tmp_path: Path, pair: str, year: int) -> tuple[Path, pd.DataFrame]:
    df = pd.read_csv(fx_dir / f"{pair}_M1_{year}.csv.gz")
    utc = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True))
    # the DST flag is computed once per distinct hour (zoneinfo per bar would be slow)
    hours = utc.floor("h")
    uniq = hours.unique()
    flag = pd.Series(_dst_flag(uniq, year), index=uniq).reindex(hours).to_numpy()
    labels = utc.tz_localize(None) - pd.Timedelta(hours=5) + pd.to_timedelta(flag.astype(int), "h")
    lines = pd.Series(labels.strftime("%Y%m%d %H%M%S"))
    for col in ("open", "high", "low", "close", "volume"):
        lines = lines + ";" + df[col].astype(str)
    path = tmp_path / f"DAT_ASCII_{pair}_M1_{year}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, df.assign(timestamp=utc)


def _week_opens(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    gap = np.r_[True, np.diff(index.as_unit("ns").asi8) > 24 * 3600 * 10**9]
    return index[gap][1:]  # the first bar of the file is not a weekly open


@pytest.mark.parametrize(("pair", "year"), [("EURUSD", 2018), ("EURUSD", 2019), ("GBPUSD", 2019)])
def test_weekly_open_is_sunday_17h_new_york_every_week(
    fx_dir: Path, tmp_path: Path, pair: str, year: int
) -> None:
    path, truth = _histdata_file(fx_dir, tmp_path, pair, year)
    imported = read_candles_file(path)[0].frame()
    assert imported.index.equals(pd.DatetimeIndex(truth["timestamp"]).as_unit("ns"))

    opens = _week_opens(imported.index).tz_convert("America/New_York")
    ok = (opens.day_of_week == 6) & (opens.hour == 17) & (opens.minute < 15)
    assert len(opens) >= 50
    bad = [str(t) for t in opens[~ok]]
    assert len(bad) <= 2, f"weekly opens not at Sunday 17:00 New York: {bad}"
    # the weeks right after each DST change (US and EU, spring and autumn) are all right
    for switch in _switches(year):
        after = opens[opens > switch][:1]
        assert len(after) == 1 and bool(ok[opens.get_loc(after[0])]), (switch, after)


def _switches(year: int) -> list[pd.Timestamp]:
    """Both calendars' spring and autumn switch days of ``year`` (Sundays, New York time)."""
    ny = "America/New_York"
    march = pd.date_range(f"{year}-03-01", f"{year}-03-31", freq="W-SUN", tz=ny)
    october = pd.date_range(f"{year}-10-01", f"{year}-10-31", freq="W-SUN", tz=ny)
    november = pd.date_range(f"{year}-11-01", f"{year}-11-07", freq="W-SUN", tz=ny)
    return [march[1], march[-1], october[-1], november[0]]
