"""Causal resampling, checked by hand on a small frame with a gap and a partial bar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forex_diffusion.data.resample import closed_bar_closes, resample_ohlc
from forex_diffusion.timeframes import NS_PER_MIN

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


# gaps between consecutive base bars, in base bars: mostly none, short holes, hours, a weekend
_GAP = st.one_of(
    st.just(1),
    st.just(1),
    st.integers(2, 20),
    st.integers(21, 400),
    st.integers(2_870, 2_890),  # Friday 22:00 -> Sunday 22:00 in 1m bars (and longer in 5m)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(["1m", "5m"]),
    timeframe=st.sampled_from(["5m", "15m", "1h", "4h"]),
    first=st.integers(0, 7 * 1440 - 1),  # minute of a week (Monday 2021-03-01 on)
    gaps=st.lists(_GAP, min_size=0, max_size=300),
)
def test_closed_bar_closes_equal_resample_ohlc(
    base: str, timeframe: str, first: int, gaps: list[int]
) -> None:
    """The close times of the closed bars, computed from the open times alone, equal the index
    of ``resample_ohlc`` plus the timeframe on random gap patterns (weekends included)."""
    step = {"1m": 1, "5m": 5}[base]
    start = pd.Timestamp("2021-03-01", tz="UTC") + pd.Timedelta(minutes=first - first % step)
    minutes = np.r_[0, np.cumsum(np.asarray(gaps, dtype=np.int64) * step)]
    index = pd.DatetimeIndex(start + pd.to_timedelta(minutes, unit="min"), name="timestamp")
    price = 1.1 + np.arange(len(index)) * 1e-5
    frame = pd.DataFrame(
        {"open": price, "high": price, "low": price, "close": price, "volume": 1.0}, index=index
    )
    expected = resample_ohlc(frame, timeframe, base_timeframe=base).index + pd.Timedelta(
        timeframe.replace("m", "min")
    )
    got = closed_bar_closes(index.as_unit("ns").asi8, timeframe, base)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected.as_unit("ns").asi8)


def test_closed_bar_closes_of_no_bars_and_of_a_partial_bar() -> None:
    assert closed_bar_closes(np.zeros(0, np.int64), "5m").shape == (0,)
    t0 = pd.Timestamp("2021-03-01 10:00", tz="UTC").value
    # 10:00-10:03: the 10:00 bar has not closed; 10:04 closes it
    assert closed_bar_closes(t0 + np.arange(4) * NS_PER_MIN, "5m").tolist() == []
    assert closed_bar_closes(t0 + np.arange(5) * NS_PER_MIN, "5m").tolist() == [t0 + 5 * NS_PER_MIN]
