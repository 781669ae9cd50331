"""Leakage by perturbation: nothing after the decision time t reaches the features of t.

For many random t on real EURUSD data, every candle after t is replaced by noise at another
price level (or dropped altogether) and the dataset is rebuilt: every feature row of every
timeframe that closed at or before t, every window of t, close(t) and the volatility scale
must be bit-identical. Changing only the candle that forms close(t+h) must change only the
horizon-h target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.unified_pipeline import fit_standardizer, multi_timeframe_features
from fx_test_utils import load_fx, make_config

HORIZONS = (5, 15, 60, 240)


@pytest.fixture(scope="module")
def setup(
    fx_dir: Path, default_config_path: Path
) -> tuple[pd.DataFrame, SSSDConfig, Standardizer, SSSDTimeSeriesDataset]:
    candles = load_fx(fx_dir, "2019-01-01", "2019-03-16")
    cfg = make_config(default_config_path)
    raw = multi_timeframe_features(candles, cfg).raw
    std = fit_standardizer(raw, cfg)
    base = SSSDTimeSeriesDataset.from_candles(candles, cfg, std, require_targets=False)
    return candles, cfg, std, base


def noise_after(df: pd.DataFrame, t: pd.Timestamp, rng: np.random.Generator) -> pd.DataFrame:
    """Same timestamps; every bar opening at or after t becomes a valid noise candle."""
    out = df.copy()
    after = out.index >= t
    n = int(after.sum())
    close = 1.7 * np.exp(np.cumsum(rng.normal(0, 2e-3, n)))
    open_ = np.r_[1.7, close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 1e-3, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 1e-3, n)))
    out.loc[after, ["open", "high", "low", "close"]] = np.c_[open_, high, low, close]
    return out


def assert_same_past(a: SSSDTimeSeriesDataset, b: SSSDTimeSeriesDataset, t: pd.Timestamp) -> None:
    """Every standardized feature row of every timeframe closing at or before t is equal."""
    t_ns = t.as_unit("ns").value
    for tf, block in a.source.blocks.items():
        other = b.source.blocks[tf]
        n = int(np.searchsorted(block.close_ns, t_ns, side="right"))
        assert n > 0
        np.testing.assert_array_equal(block.open_ns[:n], other.open_ns[:n])
        np.testing.assert_array_equal(block.values[:n], other.values[:n])


def assert_same_sample(a: SSSDTimeSeriesDataset, i: int, b: SSSDTimeSeriesDataset, j: int) -> None:
    fa, fb = a[i][0], b[j][0]
    for tf in fa:
        assert np.array_equal(fa[tf].numpy(), fb[tf].numpy()), tf
    assert a.decision_times[i] == b.decision_times[j]
    np.testing.assert_array_equal(a.scales[i], b.scales[j])
    assert a.last_close[i] == b.last_close[j]


def test_future_noise_never_reaches_features_or_windows(
    setup: tuple[pd.DataFrame, SSSDConfig, Standardizer, SSSDTimeSeriesDataset],
) -> None:
    candles, cfg, std, base = setup
    rng = np.random.default_rng(11)
    picks = rng.choice(np.arange(len(base) // 4, len(base) - 10), 16, replace=False)
    for n_check, i in enumerate(sorted(picks)):
        t = base.decision_times[i]
        noisy = noise_after(candles, t, rng)
        rebuilt = SSSDTimeSeriesDataset.from_candles(
            noisy, cfg, std, decision_times=[t], require_targets=False
        )
        assert_same_sample(base, int(i), rebuilt, 0)
        assert_same_past(base, rebuilt, t)
        finite = np.isfinite(base.log_returns[i])
        assert finite.any()
        # the noise does change the known targets (it is a different price level)
        assert not np.array_equal(base.log_returns[i][finite], rebuilt.log_returns[0][finite])
        if n_check % 4 == 0:  # no future at all: what inference sees
            cut = SSSDTimeSeriesDataset.from_candles(
                candles[candles.index < t], cfg, std, require_targets=False
            )
            assert cut.decision_times[-1] == t
            assert_same_sample(base, int(i), cut, len(cut) - 1)
            assert_same_past(base, cut, t)
            assert np.isnan(cut.log_returns[-1]).all()


def test_only_the_target_moves_with_the_candle_at_t_plus_h(
    setup: tuple[pd.DataFrame, SSSDConfig, Standardizer, SSSDTimeSeriesDataset],
) -> None:
    candles, cfg, std, base = setup
    rng = np.random.default_rng(12)
    complete = np.flatnonzero(np.isfinite(base.log_returns).all(axis=1))
    for i in rng.choice(complete[len(complete) // 4 :], 3, replace=False):
        t = base.decision_times[i]
        for j, h in enumerate(HORIZONS):
            end = t + pd.Timedelta(minutes=h)
            # the last 1m candle of the 5m bar ending at t + h forms close(t + h)
            k = int(np.searchsorted(candles.index, end)) - 1
            assert candles.index[k] >= end - pd.Timedelta(minutes=5)
            moved = candles.copy()
            moved.iloc[k, :4] = moved.iloc[k, :4] * 1.002
            rebuilt = SSSDTimeSeriesDataset.from_candles(
                moved, cfg, std, decision_times=[t], require_targets=False
            )
            assert_same_sample(base, int(i), rebuilt, 0)
            changed = base.log_returns[i] != rebuilt.log_returns[0]
            assert changed.tolist() == [m == j for m in range(len(HORIZONS))], (t, h)
            assert rebuilt.log_returns[0, j] == pytest.approx(
                base.log_returns[i, j] + np.log(1.002)
            )
