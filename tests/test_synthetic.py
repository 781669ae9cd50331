"""The synthetic market: seeded, weekend gaps, volatility clustering, fat tails, valid candles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forex_diffusion.data.candles import validate_candles
from forex_diffusion.data.synthetic import generate_synthetic_market


def test_reproducible_with_seed() -> None:
    a = generate_synthetic_market("2021-03-01", "2021-03-03", seed=11)
    b = generate_synthetic_market("2021-03-01", "2021-03-03", seed=11)
    c = generate_synthetic_market("2021-03-01", "2021-03-03", seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not a["close"].equals(c["close"])


def test_valid_candles_labelled_synthetic(synth_month: pd.DataFrame) -> None:
    out = validate_candles(synth_month, where="synthetic market")
    assert len(out) == len(synth_month)
    assert synth_month.attrs["synthetic"] is True
    assert (synth_month.index.second == 0).all()
    assert synth_month.index[0] >= pd.Timestamp("2021-03-01", tz="UTC")
    assert synth_month.index[-1] < pd.Timestamp("2021-03-29", tz="UTC")


def test_weekend_gaps(synth_month: pd.DataFrame) -> None:
    idx = synth_month.index
    assert not (idx.day_of_week == 5).any()  # no Saturday bar
    friday_late = (idx.day_of_week == 4) & (idx.hour >= 22)
    sunday_early = (idx.day_of_week == 6) & (idx.hour < 22)
    assert not (friday_late | sunday_early).any()
    steps = np.diff(idx.asi8) / 60e9
    assert (steps >= 48 * 60).sum() == 4  # four weekend closes in four weeks
    assert (steps > 1).sum() > 4  # and some missing quiet minutes


def test_volatility_clustering_and_fat_tails(synth_month: pd.DataFrame) -> None:
    close = synth_month["close"].to_numpy()
    r = np.diff(np.log(close))
    r = r[np.diff(synth_month.index.asi8) == 60e9]  # consecutive minutes only
    a = np.abs(r - r.mean())
    acf1 = np.corrcoef(a[:-1], a[1:])[0, 1]
    acf60 = np.corrcoef(a[:-60], a[60:])[0, 1]
    assert acf1 > 0.05 and acf60 > 0.02  # |r| stays correlated for an hour
    assert stats.kurtosis(r, fisher=False) > 3.5  # fatter than Gaussian (3)


def test_closed_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="no trading minutes"):
        generate_synthetic_market("2021-03-06", "2021-03-07", seed=0)  # a Saturday
