"""NHITS Student-t peer: per-horizon marginals of the cumulative return, monotone, causal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forex_diffusion.evaluation.peer_nhits import NHITSPeer, nhits_available

pytestmark = [
    pytest.mark.slow,  # trains NHITS twice on CPU
    pytest.mark.skipif(
        not nhits_available(),
        reason="neuralforecast is not installed (the optional `peers` extra)",
    ),
]


def _bars(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """5m bars of a Student-t random walk whose volatility follows the time of day."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-04", periods=n, freq="5min", tz="UTC")
    tod = (idx.hour * 60 + idx.minute).to_numpy() / 1440
    vol = 1e-4 * np.exp(0.9 * np.sin(2 * np.pi * tod))
    close = 1.1 * np.exp(np.cumsum(vol * rng.standard_t(5, n)))
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close}, index=idx)
    return bars, vol


def _small(max_steps: int = 60) -> NHITSPeer:
    return NHITSPeer(steps=12, input_size=48, max_steps=max_steps, windows_batch_size=128)


@pytest.fixture(scope="module")
def fitted() -> tuple[NHITSPeer, pd.DataFrame, np.ndarray]:
    bars, vol = _bars(7000)
    return _small().fit(bars.iloc[:5000]), bars, vol


def test_samples_are_monotone_student_t_quantiles_of_each_horizon(fitted) -> None:
    peer, bars, vol = fitted
    times = pd.DatetimeIndex(bars.index[5000:6900:3] + pd.Timedelta(minutes=5))
    samples = peer.predict_samples(bars, times, (5, 15, 60), 99)
    assert samples.shape == (len(times), 3, 99) and np.isfinite(samples).all()
    assert np.all(np.diff(samples, axis=2) >= 0)
    dof, loc, scale = peer.student_t(bars, times)
    assert np.all(dof > 2) and np.all(scale > 0)
    # sample k of S is the Student-t quantile at k/(S+1) of the step-h/5 marginal
    expected = loc[:, 2] + scale[:, 2] * stats.t.ppf(0.5, dof[:, 2])
    np.testing.assert_allclose(samples[:, 1, 49], expected, rtol=1e-9, atol=1e-15)
    # a wider spread at 60 than at 5 minutes, following the cumulative return
    width = samples[:, :, 94] - samples[:, :, 4]
    assert np.median(width[:, 2] / width[:, 0]) > 1.5
    # the 90 % interval's width follows the true volatility at t (time of day)
    pos = bars.index.get_indexer(times - pd.Timedelta(minutes=5))
    assert stats.spearmanr(width[:, 0], vol[pos + 1]).statistic > 0.3


def test_forecasts_use_only_bars_closed_by_t(fitted) -> None:
    peer, bars, _ = fitted
    times = pd.DatetimeIndex(bars.index[6000:6100:10] + pd.Timedelta(minutes=5))
    later = bars.copy()
    later.loc[later.index >= times[4], ["open", "high", "low", "close"]] *= 1.05
    a = peer.predict_samples(bars, times, (5, 60), 20)
    b = peer.predict_samples(later, times, (5, 60), 20)
    np.testing.assert_array_equal(a[:5], b[:5])
    assert not np.allclose(a[5:], b[5:])


def test_fit_is_seeded_and_short_history_gives_nan_rows(fitted) -> None:
    peer, bars, _ = fitted
    again = _small().fit(bars.iloc[:5000])
    times = pd.DatetimeIndex(bars.index[[10, 6000]] + pd.Timedelta(minutes=5))
    a = peer.predict_samples(bars, times, (5,), 10)
    np.testing.assert_array_equal(a, again.predict_samples(bars, times, (5,), 10))
    assert np.isnan(a[0]).all() and np.isfinite(a[1]).all()  # 11 bars < 48 of input
    with pytest.raises(ValueError, match="not a multiple of 5"):
        peer.predict_samples(bars, times, (7,), 10)
    with pytest.raises(ValueError, match="usable 5m bars"):
        _small().fit(bars.iloc[:80])
