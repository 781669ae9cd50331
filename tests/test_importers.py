"""Importers: every format on a small sample, HistData time zones, every bad input."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.data.importers import import_files, read_candles_file
from forex_diffusion.data.store import CandleStore
from forex_diffusion.errors import DataError, NotFoundError

# Three known UTC bars (winter, so HistData labels are UTC-5).
BARS = [
    ("2019-01-02 00:00", 1.14600, 1.14650, 1.14550, 1.14620, 10.0),
    ("2019-01-02 00:01", 1.14620, 1.14700, 1.14610, 1.14690, 12.0),
    ("2019-01-02 00:03", 1.14690, 1.14695, 1.14500, 1.14510, 7.0),
]


def expected_frame(volume: bool = True) -> pd.DataFrame:
    idx = pd.DatetimeIndex([b[0] for b in BARS], tz="UTC", name="timestamp").as_unit("ns")
    cols = ("open", "high", "low", "close", "volume")
    data = {
        c: [b[i + 1] if (c != "volume" or volume) else 0.0 for b in BARS]
        for i, c in enumerate(cols)
    }
    return pd.DataFrame(data, index=idx)


def _t(stamp: str) -> pd.Timestamp:
    return pd.Timestamp(stamp)


def _ohlcv(b: tuple, sep: str) -> str:
    return sep.join(
        f"{v:g}" if isinstance(v, float) and i == 4 else repr(v) for i, v in enumerate(b[1:])
    )


def tidy_text() -> str:
    rows = [f"{_t(b[0]):%Y-%m-%dT%H:%M:%S}Z,{_ohlcv(b, ',')}" for b in BARS]
    return "timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n"


def histdata_text() -> str:
    rows = [f"{_t(b[0]) - pd.Timedelta(hours=5):%Y%m%d %H%M%S};{_ohlcv(b, ';')}" for b in BARS]
    return "\n".join(rows) + "\n"


def mt4_text() -> str:
    return "\n".join(f"{_t(b[0]):%Y.%m.%d,%H:%M},{_ohlcv(b, ',')}" for b in BARS) + "\n"


def mt5_text() -> str:
    head = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>"
    rows = [f"{_t(b[0]):%Y.%m.%d\t%H:%M:%S}\t{_ohlcv(b, chr(9))}\t0\t12" for b in BARS]
    return head + "\n" + "\n".join(rows) + "\n"


def dukascopy_text() -> str:
    rows = [f"{_t(b[0]):%d.%m.%Y %H:%M:%S}.000,{_ohlcv(b, ',')}" for b in BARS]
    return "Gmt time,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n"


def dukascopy_local_text() -> str:
    rows = [
        f"{_t(b[0]) + pd.Timedelta(hours=1):%d.%m.%Y %H:%M:%S}.000 GMT+0100,{_ohlcv(b, ',')}"
        for b in BARS
    ]
    return "Local time,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n"


def generic_text() -> str:
    rows = [f"{_t(b[0]):%d/%m/%Y %H:%M};{_ohlcv(b, ';')}" for b in BARS]
    return "When;O;H;L;C;V\n" + "\n".join(rows) + "\n"


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def import_and_load(tmp_path: Path, path: Path, **kw: object) -> tuple[pd.DataFrame, object]:
    store = CandleStore(tmp_path / "store")
    report = import_files([path], "EURUSD", store, **kw)  # type: ignore[arg-type]
    return store.load("EURUSD"), report


SAMPLES = {
    "tidy": ("bars.csv", tidy_text),
    "histdata": ("DAT_ASCII_EURUSD_M1_2019.csv", histdata_text),
    "mt4": ("EURUSD1.csv", mt4_text),
    "mt5": ("EURUSD_M1.csv", mt5_text),
    "dukascopy": ("EURUSD_Candlestick_1_M_BID.csv", dukascopy_text),
}


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
@pytest.mark.parametrize("explicit", [False, True])
def test_each_format_imports_known_bars(tmp_path: Path, fmt: str, explicit: bool) -> None:
    name, make = SAMPLES[fmt]
    path = write(tmp_path, name, make())
    loaded, report = import_and_load(tmp_path, path, fmt=fmt if explicit else "auto")
    pd.testing.assert_frame_equal(loaded, expected_frame(), check_freq=False)
    assert report.files[0].format == fmt  # type: ignore[attr-defined]
    assert report.rows_read == 3 and report.rows_written == 3  # type: ignore[attr-defined]


def test_tidy_gzip_and_mt5_utf16(tmp_path: Path) -> None:
    gz = tmp_path / "bars.csv.gz"
    gz.write_bytes(gzip.compress(tidy_text().encode()))
    loaded, _ = import_and_load(tmp_path / "a", gz)
    pd.testing.assert_frame_equal(loaded, expected_frame(), check_freq=False)
    utf16 = write(tmp_path, "mt5.csv", "\ufeff" + mt5_text(), encoding="utf-16-le")
    loaded, report = import_and_load(tmp_path / "b", utf16)
    assert report.files[0].format == "mt5"  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(loaded, expected_frame(), check_freq=False)


def test_histdata_zip_reads_csv_member_only(tmp_path: Path) -> None:
    path = tmp_path / "HISTDATA_COM_ASCII_EURUSD_M12019.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("DAT_ASCII_EURUSD_M1_2019.csv", histdata_text())
        zf.writestr("DAT_ASCII_EURUSD_M1_2019.txt", "HistData.com status report\ngap of 61 s\n")
    loaded, report = import_and_load(tmp_path, path)
    pd.testing.assert_frame_equal(loaded, expected_frame(), check_freq=False)
    assert report.files[0].file.endswith(".zip:DAT_ASCII_EURUSD_M1_2019.csv")  # type: ignore[attr-defined]


def test_dukascopy_local_time_uses_its_offset(tmp_path: Path) -> None:
    loaded, _ = import_and_load(tmp_path, write(tmp_path, "d.csv", dukascopy_local_text()))
    pd.testing.assert_frame_equal(loaded, expected_frame(), check_freq=False)


def test_generic_with_mapping_and_time_format(tmp_path: Path) -> None:
    path = write(tmp_path, "g.csv", generic_text())
    loaded, report = import_and_load(
        tmp_path,
        path,
        fmt="generic",
        columns="time=When,open=O,high=H,low=L,close=C,volume=V",
        time_format="%d/%m/%Y %H:%M",
    )
    assert report.files[0].format == "generic"  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(loaded, expected_frame(), check_freq=False)


def test_generic_split_date_time_positional_and_tz(tmp_path: Path) -> None:
    # headerless, date and time in separate columns, no volume, clock UTC+2
    rows = [
        f"{_t(b[0]) + pd.Timedelta(hours=2):%Y-%m-%d|%H:%M:%S}|{b[1]!r}|{b[2]!r}|{b[3]!r}|{b[4]!r}"
        for b in BARS
    ]
    path = write(tmp_path, "p.txt", "\n".join(rows) + "\n")
    loaded, _ = import_and_load(
        tmp_path, path, columns="date=0,time=1,open=2,high=3,low=4,close=5", tz="UTC+2"
    )
    pd.testing.assert_frame_equal(loaded, expected_frame(volume=False), check_freq=False)


def test_generic_header_autodetected(tmp_path: Path) -> None:
    rows = [f"{_t(b[0]):%Y-%m-%d %H:%M:%S},{_ohlcv(b, ',')}" for b in BARS]
    path = write(tmp_path, "x.csv", "Date,Open,High,Low,Close,Volume\n" + "\n".join(rows) + "\n")
    loaded, report = import_and_load(tmp_path, path)
    assert report.files[0].format == "generic"  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(loaded, expected_frame(), check_freq=False)


def test_generic_mapping_errors() -> None:
    from forex_diffusion.data.importers.generic import parse_column_mapping

    with pytest.raises(DataError, match="missing key"):
        parse_column_mapping("time=T,open=O")
    with pytest.raises(DataError, match="unknown key"):
        parse_column_mapping("time=T,open=O,high=H,low=L,close=C,price=P")
    with pytest.raises(DataError, match="not key=column"):
        parse_column_mapping("time=T,open")


# --- HistData clock -------------------------------------------------------------------------
# Known UTC instants and the HistData label a New-York-style clock shows for them, worked out
# by hand: US DST 2018: Mar 11 -> Nov 4; EU 2018: Mar 25 -> Oct 28; EU 2019: Mar 31 -> Oct 27;
# US 2019: Mar 10 -> Nov 3. Label = UTC - 5 h, or UTC - 4 h while the year's rule says DST.
HISTDATA_2018 = [  # data year <= 2018: US dates
    ("20180309 093000", "2018-03-09 14:30"),  # before the US spring switch: UTC-5
    ("20180311 170000", "2018-03-11 21:00"),  # Sunday weekly open after the switch: UTC-4
    ("20180312 093000", "2018-03-12 13:30"),  # US DST, EU not yet: UTC-4
    ("20181029 093000", "2018-10-29 13:30"),  # EU back to winter, US still DST: UTC-4
    ("20181105 093000", "2018-11-05 14:30"),  # after the US autumn switch: UTC-5
]
HISTDATA_2019 = [  # data year >= 2019: EU dates
    ("20190312 093000", "2019-03-12 14:30"),  # US already DST, EU not: UTC-5
    ("20190329 165900", "2019-03-29 21:59"),  # last Friday before the EU switch: UTC-5
    ("20190401 093000", "2019-04-01 13:30"),  # after the EU spring switch: UTC-4
    ("20191025 093000", "2019-10-25 13:30"),  # before the EU autumn switch: UTC-4
    ("20191029 093000", "2019-10-29 14:30"),  # EU winter, US still DST: UTC-5
]


def _histdata_file(tmp_path: Path, name: str, labels: list[tuple[str, str]]) -> Path:
    rows = [f"{lab};1.1;1.2;1.0;1.15;0" for lab, _ in labels]
    return write(tmp_path, name, "\n".join(rows) + "\n")


@pytest.mark.parametrize("year, cases", [(2018, HISTDATA_2018), (2019, HISTDATA_2019)])
def test_histdata_clock_follows_year_rule(tmp_path: Path, year: int, cases: list) -> None:
    path = _histdata_file(tmp_path, f"DAT_ASCII_EURUSD_M1_{year}.csv", cases)
    parsed = read_candles_file(path)[0]
    expected = pd.DatetimeIndex([utc for _, utc in cases], tz="UTC").as_unit("ns")
    assert parsed.frame().index.equals(expected)
    assert parsed.report.tz == "histdata"


def test_histdata_tz_overrides(tmp_path: Path) -> None:
    path = _histdata_file(tmp_path, "h.csv", HISTDATA_2019)
    labels = pd.DatetimeIndex([pd.Timestamp(lab) for lab, _ in HISTDATA_2019])
    fixed = read_candles_file(path, tz="Etc/GMT+5")[0].frame().index
    assert fixed.equals((labels + pd.Timedelta(hours=5)).tz_localize("UTC").as_unit("ns"))
    ny = read_candles_file(path, tz="America/New_York")[0].frame().index
    assert ny.equals(labels.tz_localize("America/New_York").tz_convert("UTC").as_unit("ns"))
    forced_us = read_candles_file(path, tz="ny-us")[0].frame().index
    assert forced_us.equals(ny)  # true New York time = US switching dates
    path18 = _histdata_file(tmp_path, "h18.csv", HISTDATA_2018)
    forced_eu = read_candles_file(path18, tz="ny-eu")[0].frame().index
    # 2018-03-12 13:30 under the US rule becomes 14:30 under EU dates (EU still winter)
    assert forced_eu[2] == pd.Timestamp("2018-03-12 14:30", tz="UTC")


def test_tz_nonexistent_local_time_is_a_bad_row(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "h.csv",
        "20190310 013000;1.1;1.2;1.0;1.15;0\n20190310 023000;1.1;1.2;1.0;1.15;0\n",
    )
    with pytest.raises(DataError, match=r"h\.csv:2: local time 2019-03-10 02:30:00 does not exist"):
        read_candles_file(path, tz="America/New_York")


def test_unknown_tz_is_rejected(tmp_path: Path) -> None:
    path = _histdata_file(tmp_path, "h.csv", HISTDATA_2019)
    with pytest.raises(DataError, match="unknown time zone"):
        read_candles_file(path, tz="Mars/Olympus")
    with pytest.raises(DataError, match="own UTC offset"):
        read_candles_file(write(tmp_path, "t.csv", tidy_text()), tz="America/New_York")


# --- bad inputs -----------------------------------------------------------------------------
GOOD = "timestamp,open,high,low,close,volume\n"
ROW1 = "2019-01-02T00:00:00Z,1.1,1.2,1.0,1.15,0\n"
ROW2 = "2019-01-02T00:01:00Z,1.15,1.2,1.1,1.12,0\n"


@pytest.mark.parametrize(
    "row, reason",
    [
        ("2019-01-02T00:02:00Z,1.1,1.2,1.0\n", "expected 6 fields, got 4"),
        ("2019-13-45T00:02:00Z,1.1,1.2,1.0,1.15,0\n", "cannot parse time '2019-13-45T00:02:00Z'"),
        ("2019-01-02T00:02:00Z,1.1,abc,1.0,1.15,0\n", "invalid number 'abc' in column 'high'"),
        ("2019-01-02T00:02:00Z,1.1,1.2,nan,1.15,0\n", "NaN"),
        ("2019-01-02T00:02:00Z,1.1,inf,1.0,1.15,0\n", "infinite value"),
        ("2019-01-02T00:02:00Z,1.1,1.2,-1.0,1.15,0\n", "non-positive price -1 in column 'low'"),
        ("2019-01-02T00:02:00Z,0,1.2,1.0,1.15,0\n", "non-positive price 0 in column 'open'"),
        (
            "2019-01-02T00:02:00Z,1.1,1.12,1.0,1.15,0\n",
            "high 1.12 is below max(open, close) = 1.15",
        ),
        ("2019-01-02T00:02:00Z,1.1,1.2,1.11,1.15,0\n", "low 1.11 is above min(open, close) = 1.1"),
        ("2019-01-02T00:00:30Z,1.1,1.2,1.0,1.15,0\n", "not on a whole minute"),
        ("2019-01-02T00:02:00Z,1.1,1.2,1.0,1.15,-5\n", "negative volume"),
        ("2019-01-01T23:59:00Z,1.1,1.2,1.0,1.15,0\n", "earlier than a previous bar"),
    ],
)
def test_bad_row_fails_with_file_and_line_and_writes_nothing(
    tmp_path: Path, row: str, reason: str
) -> None:
    path = write(tmp_path, "bad.csv", GOOD + ROW1 + ROW2 + row)
    store = CandleStore(tmp_path / "store")
    with pytest.raises(DataError) as err:
        import_files([path], "EURUSD", store)
    assert f"{path}:4: " in str(err.value)
    assert reason in str(err.value)
    assert "nothing was imported" in str(err.value)
    assert store.assets() == []
    # skip_bad imports the two good rows and reports the bad one
    report = import_files([path], "EURUSD", store, skip_bad=True)
    assert report.rows_written == 2
    assert [str(b).split(": ", 1)[0] for b in report.bad_rows] == [f"{path}:4"]
    assert reason in str(report.bad_rows[0])


def test_non_monotonic_names_the_earlier_line(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", GOOD + ROW2 + ROW1)
    with pytest.raises(
        DataError, match=r"m\.csv:3: time 2019-01-02 00:00:00 UTC is earlier .* on line 2"
    ):
        read_candles_file(path)


def test_line_numbers_count_blank_lines_and_crlf(tmp_path: Path) -> None:
    text = GOOD + ROW1 + "\n\n" + ROW2 + "2019-01-02T00:02:00Z,1.1,1.0,1.0,1.15,0\n"
    path = write(tmp_path, "b.csv", text.replace("\n", "\r\n"))
    with pytest.raises(DataError, match=r"b\.csv:6: high 1 is below"):
        read_candles_file(path)
    # same with a field-count error, which takes the slow reader path
    text = GOOD + "\n" + ROW1 + "\n" + "2019-01-02T00:02:00Z,1.1\n" + ROW2
    path = write(tmp_path, "c.csv", text)
    with pytest.raises(DataError, match=r"c\.csv:5: expected 6 fields, got 2"):
        read_candles_file(path)


def test_bad_histdata_row_line(tmp_path: Path) -> None:
    text = histdata_text() + "20190102 000400;1.1;1.2;1.0\n"
    path = write(tmp_path, "DAT_ASCII_EURUSD_M1_2019.csv", text)
    with pytest.raises(
        DataError, match=r"DAT_ASCII_EURUSD_M1_2019\.csv:4: expected 6 fields, got 4"
    ):
        read_candles_file(path)


def test_duplicates_dropped_and_counted(tmp_path: Path) -> None:
    conflicting = ROW1.replace("1.15,0", "1.16,0")
    path = write(tmp_path, "d.csv", GOOD + ROW1 + ROW2 + ROW1 + conflicting)
    store = CandleStore(tmp_path / "store")
    report = import_files([path], "EURUSD", store, on_conflict="keep")
    assert report.duplicates_dropped == 2 and report.rows_written == 2
    assert report.files[0].conflicting_duplicates == 1
    assert store.load("EURUSD")["close"].tolist() == [1.15, 1.12]  # first copy kept


def test_missing_columns_empty_unknown_and_missing_files(tmp_path: Path) -> None:
    path = write(tmp_path, "cols.csv", "timestamp,open,high,low\n2019-01-02T00:00:00Z,1,1,1\n")
    with pytest.raises(DataError, match=r"cols\.csv:1: missing column\(s\) \['close'\]"):
        read_candles_file(path, fmt="tidy")
    with pytest.raises(DataError, match="empty"):
        read_candles_file(write(tmp_path, "empty.csv", "\n\n"))
    with pytest.raises(DataError, match=r"odd\.csv:1: cannot recognise the file format"):
        read_candles_file(write(tmp_path, "odd.csv", "hello world\n1 2 3\n"))
    with pytest.raises(NotFoundError, match="no such file"):
        read_candles_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="unknown format"):
        import_files([path], "EURUSD", CandleStore(tmp_path / "s"), fmt="excel")


def test_all_files_checked_before_writing(tmp_path: Path) -> None:
    good = write(tmp_path, "good.csv", tidy_text())
    bad = write(tmp_path, "bad.csv", GOOD + ROW1 + "2019-01-02T00:01:00Z,1,0.5,1,1,0\n")
    store = CandleStore(tmp_path / "store")
    with pytest.raises(DataError, match=r"bad\.csv:3"):
        import_files([good, bad], "EURUSD", store)
    assert store.assets() == []


def test_multiple_overlapping_files_merge(tmp_path: Path) -> None:
    a = write(tmp_path, "a.csv", tidy_text())
    b = write(
        tmp_path,
        "b.csv",
        GOOD + ROW1.replace("00:00:00Z", "00:03:00Z") + ROW1.replace("00:00:00Z", "00:05:00Z"),
    )
    store = CandleStore(tmp_path / "store")
    report = import_files([b, a], "EURUSD", store, on_conflict="keep")
    assert report.duplicates_dropped == 1  # 00:03 is in both; the first file listed wins
    loaded = store.load("EURUSD")
    assert len(loaded) == 4 and loaded.loc["2019-01-02 00:03", "close"] == 1.15


def test_histdata_repeated_hour_is_dropped_as_duplicates(tmp_path: Path) -> None:
    """2019-2022 HistData files repeat one hour at the EU autumn switch: dropped and counted."""
    hour = [f"20191027 19{m:02d}00;1.1;1.2;1.0;1.15;0" for m in range(60)]
    after = ["20191027 200000;1.1;1.2;1.0;1.15;0"]
    path = write(tmp_path, "DAT_ASCII_EURUSD_M1_2019.csv", "\n".join(hour + hour + after) + "\n")
    parsed = read_candles_file(path)[0]
    assert parsed.report.duplicates == 60 and parsed.report.rows_valid == 61
    assert parsed.frame().index[0] == pd.Timestamp("2019-10-28 00:00", tz="UTC")


def test_histdata_roundtrip_of_real_year(fx_dir: Path, tmp_path: Path) -> None:
    """Real EURUSD 2019 bars relabelled to the HistData clock by hand come back exactly."""
    df = pd.read_csv(fx_dir / "EURUSD_M1_2019.csv.gz").iloc[::4].reset_index(drop=True)
    utc = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True))
    eu_dst = (utc >= pd.Timestamp("2019-03-31 01:00", tz="UTC")) & (
        utc < pd.Timestamp("2019-10-27 01:00", tz="UTC")
    )
    labels = (
        utc.tz_localize(None) - pd.Timedelta(hours=5) + pd.to_timedelta(eu_dst.astype(int), "h")
    )
    lines = pd.Series(labels.strftime("%Y%m%d %H%M%S"))
    for col in ("open", "high", "low", "close", "volume"):
        lines = lines + ";" + df[col].astype(str)
    path = write(tmp_path, "DAT_ASCII_EURUSD_M1_2019.csv", "\n".join(lines) + "\n")
    parsed = read_candles_file(path)[0]
    assert parsed.frame().index.equals(utc.as_unit("ns"))
    np.testing.assert_array_equal(parsed.values[:, 3], df["close"].to_numpy())
