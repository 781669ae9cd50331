"""Targets: exact-time lookup, gaps, the causal EWMA scale, conversions back to prices."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.dataset.candidates import NO_TARGET
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.features.targets import (
    close_to_close_log_returns,
    compute_targets,
    ewma_variance,
    horizon_scales,
    log_return_to_pips,
    log_return_to_price,
    log_return_to_price_change,
    pips_to_log_return,
    price_to_log_return,
    scaled_to_log_return,
)
from forex_diffusion.features.unified_pipeline import fit_standardizer, multi_timeframe_features
from fx_test_utils import load_fx
from fx_test_utils import make_config as make_2019_config

NS_MIN = 60_000_000_000
HORIZONS = (5, 15, 60, 240)


def make_config(path: Path) -> SSSDConfig:
    return make_2019_config(
        path, val=("2019-02-11", "2019-02-20"), test=("2019-02-21", "2019-02-28")
    )


@pytest.fixture(scope="module")
def candles(fx_dir: Path) -> pd.DataFrame:
    return load_fx(fx_dir, "2019-01-01", "2019-03-01")


@pytest.fixture(scope="module")
def bars5(candles: pd.DataFrame) -> pd.DataFrame:
    """Independent 5m bars (pandas resample, empty bins dropped)."""
    b = (
        candles.resample("5min", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last"})
        .dropna()
    )
    return b[b.index + pd.Timedelta(minutes=5) <= candles.index[-1] + pd.Timedelta(minutes=1)]


def test_targets_match_direct_lookup(bars5: pd.DataFrame) -> None:
    close_ns = (bars5.index + pd.Timedelta(minutes=5)).as_unit("ns").asi8
    closes = bars5.close.to_numpy()
    by_time = dict(zip(close_ns.tolist(), closes.tolist(), strict=True))
    rng = np.random.default_rng(1)
    decision = np.sort(rng.choice(close_ns[:-100], 400, replace=False))
    out = compute_targets(close_ns, closes, decision, HORIZONS, 0.94)
    n_missing = 0
    for i, t in enumerate(decision.tolist()):
        assert out.last_close[i] == by_time[t]
        for j, h in enumerate(HORIZONS):
            fut = by_time.get(t + h * NS_MIN)
            if fut is None:
                assert math.isnan(out.log_returns[i, j])
                n_missing += 1
            else:
                assert out.log_returns[i, j] == pytest.approx(math.log(fut / by_time[t]), abs=1e-15)
    assert out.missing.sum() == n_missing
    with pytest.raises(ValueError, match="not the close of a 5m bar"):
        compute_targets(close_ns, closes, np.array([close_ns[10] + NS_MIN]), HORIZONS, 0.94)


def test_ewma_variance_and_scales_against_loop() -> None:
    rng = np.random.default_rng(2)
    close = 1.2 * np.exp(np.cumsum(rng.normal(0, 3e-4, 500)))
    r = close_to_close_log_returns(close)
    var = ewma_variance(r, 0.94)
    num = den = 0.0
    for i in range(1, len(r)):
        num = 0.94 * num + r[i] ** 2
        den = 0.94 * den + 1.0
        assert var[i] == pytest.approx(num / den, rel=1e-10)
    assert math.isnan(var[0])
    # causal: changing later returns leaves earlier variances bit-identical
    close2 = close.copy()
    close2[300:] *= 1.05
    var2 = ewma_variance(close_to_close_log_returns(close2), 0.94)
    np.testing.assert_array_equal(var[:300], var2[:300])
    assert var2[300] != var[300]
    sc = horizon_scales(var[1:4], HORIZONS)
    np.testing.assert_allclose(sc, np.sqrt(var[1:4])[:, None] * np.sqrt(np.array(HORIZONS) / 5))


def test_conversions_back_to_prices(bars5: pd.DataFrame) -> None:
    close_ns = (bars5.index + pd.Timedelta(minutes=5)).as_unit("ns").asi8
    closes = bars5.close.to_numpy()
    decision = close_ns[1000:1200]
    out = compute_targets(close_ns, closes, decision, HORIZONS, 0.94)
    k = np.searchsorted(close_ns, decision + 60 * NS_MIN)
    ok = ~np.isnan(out.log_returns[:, 2])
    fut = closes[k[ok]]
    last = out.last_close[ok]
    r = out.log_returns[ok, 2]
    np.testing.assert_allclose(log_return_to_price_change(r, last), fut - last, atol=1e-12)
    np.testing.assert_allclose(log_return_to_pips(r, last, 1e-4), (fut - last) / 1e-4, atol=1e-8)
    np.testing.assert_allclose(log_return_to_price(r, last), fut, rtol=1e-14)
    np.testing.assert_allclose(price_to_log_return(fut, last), r, atol=1e-15)
    np.testing.assert_allclose(pips_to_log_return((fut - last) / 1e-4, last, 1e-4), r, atol=1e-12)
    z = out.scaled[ok, 2]
    np.testing.assert_allclose(scaled_to_log_return(z, out.scales[ok, 2]), r, atol=1e-15)


def test_gap_targets_are_excluded_and_counted(
    candles: pd.DataFrame, default_config_path: Path
) -> None:
    cfg = make_config(default_config_path)
    raw = multi_timeframe_features(candles, cfg).raw
    std = fit_standardizer(raw, cfg)
    # Friday 2019-02-01 20:00 UTC: +5/+15/+60 exist, +240 lands on the weekend close
    t = pd.Timestamp("2019-02-01 20:00", tz="UTC")
    keep = SSSDTimeSeriesDataset.from_candles(
        candles, cfg, std, decision_times=[t], require_targets=False
    )
    assert len(keep) == 1
    assert np.isfinite(keep.log_returns[0, :3]).all() and math.isnan(keep.log_returns[0, 3])
    assert torch_isnan_last(keep)
    full = SSSDTimeSeriesDataset.from_candles(
        candles, cfg, std, start="2019-02-01", end="2019-02-02"
    )
    dropped_times = {
        pd.Timestamp("2019-02-01 18:05", tz="UTC") + pd.Timedelta(minutes=5 * i) for i in range(48)
    }
    assert not dropped_times & set(full.decision_times)
    assert full.dropped[NO_TARGET] >= 48
    assert full.missing_targets[240] >= 48
    assert np.isfinite(full.log_returns).all() and np.isfinite(full.targets).all()
    with_gaps = SSSDTimeSeriesDataset.from_candles(
        candles, cfg, std, start="2019-02-01", end="2019-02-02", require_targets=False
    )
    assert len(with_gaps) == len(full) + full.dropped[NO_TARGET]
    assert int(np.isnan(with_gaps.log_returns).any(axis=1).sum()) == full.dropped[NO_TARGET]
    # scaled targets are r / scale
    np.testing.assert_allclose(full.targets, full.log_returns / full.scales, rtol=1e-6)


def torch_isnan_last(ds: SSSDTimeSeriesDataset) -> bool:
    _, targets, _ = ds[0]
    return bool(targets[3, 0].isnan()) and bool(targets[:3].isfinite().all())
