"""Causal resampling, checked by hand on a small frame with a gap and a partial bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.data.resample import resample_ohlc

# 1m bars: 10:00-10:04 (a full 5m bar), nothing 10:05-10:11 (the 10:05 bar is a gap),
# 10:12-10:14 (a 5m bar of 3 minutes), 10:15-10:16 (trailing, not closed).
MINUTES = [0, 1, 2, 3, 4, 12, 13, 14, 15, 16]
OPEN = [10.0, 11.0, 12.0, 11.0, 10.0, 20.0, 21.0, 22.0, 30.0, 31.0]
HIGH = [11.5, 12.5, 13.0, 11.5, 10.5, 21.5, 23.0, 22.5, 31.0, 33.0]
LOW = [9.5, 10.5, 11.5, 9.0, 9.5, 19.5, 20.5, 21.5, 29.5, 30.5]
CLOSE = [11.0, 12.0, 11.0, 10.0, 10.2, 21.0, 22.0, 22.2, 31.0, 32.0]
VOLUME = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]


@pytest.fixture
def small() -> pd.DataFrame:
    idx = pd.DatetimeIndex(
        [pd.Timestamp("2021-03-01 10:00", tz="UTC") + pd.Timedelta(minutes=m) for m in MINUTES],
        name="timestamp",
    )
    return pd.DataFrame(
        {"open": OPEN, "high": HIGH, "low": LOW, "close": CLOSE, "volume": VOLUME}, index=idx
    )


def at(hhmm: str) -> pd.Timestamp:
    return pd.Timestamp(f"2021-03-01 {hhmm}", tz="UTC")


def test_5m_by_hand(small: pd.DataFrame) -> None:
    out = resample_ohlc(small, "5m")
    assert list(out.index) == [at("10:00"), at("10:10")]  # gap stays a gap, partial dropped
    first, second = out.iloc[0], out.iloc[1]
    assert (first.open, first.high, first.low, first.close) == (10.0, 13.0, 9.0, 10.2)
    assert (first.volume, first.n_base) == (15.0, 5)
    assert (second.open, second.high, second.low, second.close) == (20.0, 23.0, 19.5, 22.2)
    assert (second.volume, second.n_base) == (21.0, 3)


def test_partial_bar_only_on_request(small: pd.DataFrame) -> None:
    out = resample_ohlc(small, "5m", include_partial=True)
    assert list(out.index) == [at("10:00"), at("10:10"), at("10:15")]
    last = out.iloc[-1]
    assert (last.open, last.high, last.low, last.close, last.n_base) == (30.0, 33.0, 29.5, 32.0, 2)


def test_asof_cuts_future_base_bars(small: pd.DataFrame) -> None:
    # at 10:15 the 10:10 bar has just closed; later base bars are unknown
    assert list(resample_ohlc(small, "5m", asof=at("10:15")).index) == [at("10:00"), at("10:10")]
    # at 10:14 the 10:10 bar is still open (and 10:14 itself is not known yet)
    out = resample_ohlc(small, "5m", asof=at("10:14"), include_partial=True)
    assert list(out.index) == [at("10:00"), at("10:10")]
    assert out.iloc[-1].close == 22.0 and out.iloc[-1].n_base == 2
    assert list(resample_ohlc(small, "5m", asof=at("10:14")).index) == [at("10:00")]


def test_hour_and_4h_bins_anchor_at_epoch(small: pd.DataFrame) -> None:
    hour = resample_ohlc(small, "1h", include_partial=True)
    assert list(hour.index) == [at("10:00")] and hour.iloc[0].n_base == 10
    assert resample_ohlc(small, "1h").empty  # not closed yet
    four = resample_ohlc(small, "4h", include_partial=True)
    assert list(four.index) == [at("08:00")]


def test_microsecond_index_gives_same_result(small: pd.DataFrame) -> None:
    """pandas 3 parses times to µs; the bins must not depend on the index resolution."""
    ns = resample_ohlc(small.set_axis(small.index.as_unit("ns")), "5m")
    us = resample_ohlc(small.set_axis(small.index.as_unit("us")), "5m")
    s = resample_ohlc(small.set_axis(small.index.as_unit("s")), "5m")
    pd.testing.assert_frame_equal(ns, us)
    pd.testing.assert_frame_equal(ns, s)


def test_not_a_multiple_and_empty(small: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        resample_ohlc(small, "7m", base_timeframe="5m")
    assert resample_ohlc(small.iloc[:0], "5m").empty


def test_matches_pandas_and_never_changes_closed_bars(synth_month: pd.DataFrame) -> None:
    df = synth_month.iloc[:20_000]
    out = resample_ohlc(df, "15m")
    ref = (
        df.resample("15min", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last"})
        .dropna()
    )
    last_close = df.index[-1] + pd.Timedelta(minutes=1)
    ref = ref[ref.index + pd.Timedelta(minutes=15) <= last_close]
    assert out.index.equals(ref.index.as_unit("ns"))
    np.testing.assert_allclose(out[["open", "high", "low", "close"]].to_numpy(), ref.to_numpy())
    # causality: bars built from a prefix of the data are a prefix of the full result
    for k in (1_000, 7_777, 13_001):
        prefix = resample_ohlc(df.iloc[:k], "15m")
        pd.testing.assert_frame_equal(prefix, out.iloc[: len(prefix)])
        assert (
            prefix.index + pd.Timedelta(minutes=15) <= df.index[k - 1] + pd.Timedelta(minutes=1)
        ).all()
