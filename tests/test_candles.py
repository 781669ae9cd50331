"""The candle contract: validate_candles accepts good frames and names every defect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.data.candles import CANDLE_COLUMNS, validate_candles
from forex_diffusion.errors import DataError


def good(n: int = 5) -> pd.DataFrame:
    idx = pd.date_range("2021-03-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {
            "open": np.full(n, 1.10),
            "high": np.full(n, 1.12),
            "low": np.full(n, 1.09),
            "close": np.full(n, 1.11),
            "volume": np.arange(n, dtype=float),
        },
        index=idx,
    )


def test_good_frame_is_normalised() -> None:
    df = good().astype({"volume": "int64"})
    df.index = df.index.tz_convert("America/New_York").as_unit("us")
    out = validate_candles(df)
    assert list(out.columns) == list(CANDLE_COLUMNS)
    assert (out.dtypes == "float64").all()
    assert str(out.index.tz) == "UTC" and out.index.unit == "ns"
    assert out.index[0] == pd.Timestamp("2021-03-01", tz="UTC")
    no_volume = validate_candles(good().drop(columns="volume"))
    assert (no_volume["volume"] == 0).all()


def _with(df: pd.DataFrame, row: int, col: str, value: float) -> pd.DataFrame:
    out = df.copy()
    out.iloc[row, out.columns.get_loc(col)] = value
    return out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: good().reset_index(), "index must be a DatetimeIndex"),
        (lambda: good().tz_localize(None), "naive"),
        (lambda: good().drop(columns="close"), r"missing column\(s\) \['close'\]"),
        (lambda: good().iloc[:0], "empty"),
        (lambda: good().iloc[[0, 2, 1, 3]], "not sorted .* first at 2021-03-01 00:01:00"),
        (lambda: good().iloc[[0, 1, 1, 2]], "duplicate timestamps"),
        (lambda: _with(good(), 2, "high", np.nan), "NaN or infinite .* 2021-03-01 00:02:00"),
        (lambda: _with(good(), 3, "volume", np.inf), "NaN or infinite"),
        (lambda: _with(good(), 1, "low", -1.0), "non-positive prices"),
        (lambda: _with(good(), 4, "high", 1.105), "inconsistent OHLC"),
        (lambda: _with(good(), 0, "low", 1.115), "inconsistent OHLC"),
    ],
)
def test_defects_are_named(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=message):
        validate_candles(make(), where="test frame")


def test_where_is_in_the_message() -> None:
    with pytest.raises(DataError, match=r"^EURUSD 2019: "):
        validate_candles(good().iloc[:0], where="EURUSD 2019")
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        validate_candles([1, 2, 3])  # type: ignore[arg-type]
