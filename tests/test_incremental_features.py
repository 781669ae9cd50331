"""Incremental features (issue 17): one closed bar at a time from the state = the batch pipeline,
on a real EURUSD week replayed 1m candle by 1m candle, and the live windows = batch windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.features.incremental import IncrementalTimeframeFeatures, bars_of
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.unified_pipeline import (
    multi_timeframe_features,
)
from forex_diffusion.inference.live_features import LiveFeatureWindows
from sssd_test_utils import default_config

ALL_FAMILIES = (
    "features.names=[returns, range_body, realized_vol, atr, rsi, bollinger, macd, "
    "ema_distance, donchian, calendar, sessions, gap, volume]"
)


def _incremental_frame(bars: pd.DataFrame, timeframe: str, config) -> pd.DataFrame:
    feats = IncrementalTimeframeFeatures(timeframe, config.features, config.asset.base_timeframe)
    rows, index = [], []
    for bar, ts in zip(bars_of(bars), bars.index, strict=True):
        row = feats.update(bar)
        if row is not None:
            rows.append(row)
            index.append(ts)
    return pd.DataFrame(rows, index=pd.DatetimeIndex(index), columns=feats.names)


def _assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got.index.equals(want.index)
    a, b = got.to_numpy(), want.to_numpy()
    assert np.array_equal(np.isnan(a), np.isnan(b))
    # rolling statistics: pandas' running sums against numpy's direct ones
    close = np.isclose(a, b, rtol=1e-6, atol=1e-9) | np.isnan(b)
    bad = np.argwhere(~close)
    assert not len(bad), f"{got.columns[bad[0][1]]} at {got.index[bad[0][0]]}"


def test_every_family_incremental_equals_batch_on_a_synthetic_month_with_volume() -> None:
    config = default_config([ALL_FAMILIES])
    candles = generate_synthetic_market("2020-01-01", "2020-02-15", seed=3)
    built = multi_timeframe_features(candles, config)
    for tf in config.data.timeframes:
        _assert_frames_equal(_incremental_frame(built.bars[tf], tf, config), built.raw[tf])


def test_bars_must_arrive_in_order() -> None:
    config = default_config()
    candles = generate_synthetic_market("2020-01-06", "2020-01-07", seed=1)
    bars = bars_of(multi_timeframe_features(candles, config).bars["5m"])
    feats = IncrementalTimeframeFeatures("5m", config.features)
    feats.update(bars[1])
    with pytest.raises(ValueError, match="time order"):
        feats.update(bars[0])


def _eurusd(fx_dir: Path, start: str, end: str) -> pd.DataFrame:
    df = pd.read_csv(fx_dir / "EURUSD_M1_2019.csv.gz", parse_dates=["timestamp"], index_col=0)
    return df[
        (df.index >= pd.Timestamp(start, tz="UTC")) & (df.index < pd.Timestamp(end, tz="UTC"))
    ]


def test_live_windows_equal_batch_on_a_real_eurusd_week_replayed_bar_by_bar(
    fx_dir: Path,
) -> None:
    """History 2019-02-04 .. 03-04 pushed at once, then the week 03-04 .. 03-09 one 1m candle at
    a time; every closed bar's features and, at every 4 hours, the standardized windows equal
    the batch pipeline over the candles so far."""
    config = default_config()
    candles = _eurusd(fx_dir, "2019-02-04", "2019-03-09")
    week_start = pd.Timestamp("2019-03-04", tz="UTC")
    history, week = candles[candles.index < week_start], candles[candles.index >= week_start]
    built = multi_timeframe_features(candles, config)
    standardizer = Standardizer.fit(built.raw)
    live = LiveFeatureWindows(config, standardizer)
    live.push(history)
    closed: dict[str, list[np.ndarray]] = {tf: [] for tf in config.data.timeframes}
    checks = 0
    for i in range(len(week)):
        for tf, row in live.push(week.iloc[i : i + 1]):
            closed[tf].append(row)
        now = week.index[i] + pd.Timedelta(minutes=1)
        if now.minute == 0 and now.hour % 4 == 0 and live.ready():
            batch = standardizer.transform(
                multi_timeframe_features(candles[candles.index < now], config).raw
            )
            for tf, window in live.windows().items():
                want = batch[tf].to_numpy()[-len(window) :]
                assert np.allclose(window, want, rtol=1e-5, atol=1e-5), (tf, now)
            checks += 1
    assert checks >= 25
    full = standardizer.transform(built.raw)
    for tf, rows in closed.items():
        want = full[tf][full[tf].index >= week_start - pd.Timedelta(minutes=1)]
        got = np.stack(rows)
        assert got.shape[0] == len(want) > 0, tf
        assert np.allclose(got, want.to_numpy(), rtol=1e-5, atol=1e-5), tf


def test_service_live_windows_equal_the_features_of_a_forecast_from_candles() -> None:
    """The service hook: windows kept up to date from pushed candles = the service's own
    prepared features for the same candles (here the whole frame is the history tail)."""
    import torch

    from forex_diffusion.features.unified_pipeline import unified_feature_pipeline
    from forex_diffusion.inference.sssd_inference import SSSDInferenceService
    from forex_diffusion.models.build import build_sssd_model
    from sssd_test_utils import tiny_config

    config = tiny_config()
    candles = generate_synthetic_market("2020-01-01", "2020-01-25", seed=5)
    _, standardizer, names = unified_feature_pipeline(candles, config, "multi_timeframe")
    model = build_sssd_model(config, {tf: len(n) for tf, n in names.items()})
    service = SSSDInferenceService(model, config, standardizer, device="cpu")
    assert candles.index[-1] - candles.index[0] < service.history_span
    live = service.live_windows()
    live.push(candles.iloc[:-7])
    live.push(candles.iloc[-7:])
    want, _, _ = service.build_features(candles).get_batch([0])
    got = live.tensors()
    for tf in config.data.timeframes:
        assert torch.allclose(got[tf], want[tf], rtol=1e-5, atol=1e-5), tf
