"""Issue 16 recipe options, each off by default: the seasonal-EWMA target scale
(``data.target_scale``), the HAR realised-volatility and hour-of-week inputs
(``features.realized``, ``features.time_of_week``) and equal horizon weights.

Each option is stored in the checkpoint (config + the standardizer's seasonal fit) and honoured
by every path that builds features from it; the fit uses the training range only and every
value at a decision time t uses candles closed by t only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.dataset.source import FeatureSource, build_feature_source
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.errors import CheckpointError
from forex_diffusion.features.incremental import IncrementalTimeframeFeatures, bars_of
from forex_diffusion.features.realized import WINDOWS, har_names, realized_features
from forex_diffusion.features.seasonal_fit import META_KEY
from forex_diffusion.features.standardizer import Standardizer, fit_mask
from forex_diffusion.features.targets import scaled_to_log_return
from forex_diffusion.features.unified_pipeline import (
    TIME_OF_WEEK_NAMES,
    feature_names,
    fit_standardizer,
    multi_timeframe_features,
)
from forex_diffusion.inference.live_features import LiveFeatureWindows
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from forex_diffusion.models.baselines import SeasonalEwmaBaseline
from forex_diffusion.models.build import build_sssd_model
from forex_diffusion.models.checkpoint import save_checkpoint
from sssd_test_utils import TINY_FEATURE_DIMS, random_features, tiny_config

SPLITS = (
    "data.splits.train.start=2020-01-01",
    "data.splits.train.end=2020-02-09",
    "data.splits.val.start=2020-02-17",
    "data.splits.val.end=2020-02-29",
    "data.splits.test.start=2020-03-09",
    "data.splits.test.end=2020-03-31",
)
OPTIONS = (
    "data.target_scale=seasonal_ewma",
    "features.realized=true",
    "features.time_of_week=true",
)
FIVE = pd.Timedelta(minutes=5)


def _config(*extra: str) -> SSSDConfig:
    return tiny_config([*SPLITS, *extra])


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return generate_synthetic_market("2020-01-01", "2020-04-01", seed=11)


@pytest.fixture(scope="module")
def cfg() -> SSSDConfig:
    return _config(*OPTIONS)


@pytest.fixture(scope="module")
def source(candles: pd.DataFrame, cfg: SSSDConfig) -> FeatureSource:
    return build_feature_source(candles, cfg)


@pytest.fixture(scope="module")
def dataset(source: FeatureSource, cfg: SSSDConfig) -> SSSDTimeSeriesDataset:
    return SSSDTimeSeriesDataset.from_source(source, cfg, require_targets=False)


def _perturb_from(candles: pd.DataFrame, start: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Candles from ``start`` on multiplied by a random factor per candle (still valid OHLC)."""
    out = candles.copy()
    rows = out.index >= start
    factor = 1.0 + 0.003 * np.random.default_rng(seed).standard_normal(int(rows.sum()))
    for col in ("open", "high", "low", "close"):
        out.loc[rows, col] = out.loc[rows, col].to_numpy() * factor
    return out


def _train_bars(candles: pd.DataFrame, config: SSSDConfig) -> pd.DataFrame:
    bars = resample_ohlc(candles, "5m")
    train = config.data.splits.train.utc_range("train")
    return bars[fit_mask(bars.index, "5m", train.start, train.end)]


# --------------------------------------------------------------------------- defaults


def test_defaults_are_off_and_change_nothing(candles: pd.DataFrame) -> None:
    config = _config()
    assert config.data.target_scale == "ewma"
    assert not config.features.realized and not config.features.time_of_week
    src = build_feature_source(candles, config)
    assert src.target_seasonal is None and META_KEY not in src.standardizer.meta
    assert all(names == feature_names(config.features) for names in src.feature_names.values())
    ds = SSSDTimeSeriesDataset.from_source(src, config, require_targets=False)
    # the EWMA scale: sqrt(EWMA var of 5m returns) * sqrt(h / 5), the same factor per horizon
    ratio = ds.scales / ds.scales[:, :1]
    np.testing.assert_allclose(ratio, np.broadcast_to(np.sqrt([1, 3, 12, 48]), ratio.shape))


# --------------------------------------------------------------------------- target scale


def test_seasonal_target_scale_is_the_evaluation_baseline(
    candles: pd.DataFrame, cfg: SSSDConfig, source: FeatureSource, dataset: SSSDTimeSeriesDataset
) -> None:
    """Same estimator: the ewma_seasonal baseline fitted on the training range forecasts, at
    every decision time, exactly the σ the targets are divided by."""
    ev = cfg.evaluation
    baseline = SeasonalEwmaBaseline(
        ev.ewma_lambdas, ev.ewma_objective, ev.seasonal_slot_minutes, ev.seasonal_prior_count
    ).fit(_train_bars(candles, cfg))
    fit = source.target_seasonal
    assert fit is not None and baseline.fit_ is not None
    assert fit.lam == baseline.lambda_ and fit.init_u2 == baseline.init_u2_
    np.testing.assert_array_equal(fit.factors.factor2, baseline.fit_.factors.factor2)
    forecast = baseline.forecast(
        resample_ohlc(candles, "5m"), dataset.decision_times, (5, 15, 60, 240)
    )
    np.testing.assert_allclose(dataset.scales, forecast.scale, rtol=1e-12)
    # it is not the plain EWMA scale
    plain = SSSDTimeSeriesDataset.from_candles(
        candles,
        _config(),
        build_feature_source(candles, _config()).standardizer,
        decision_times=dataset.decision_times[::500],
    )
    assert not np.allclose(plain.scales, dataset.scales[::500][: len(plain)], rtol=0.05)


def test_targets_scaled_and_unscaled_round_trip(dataset: SSSDTimeSeriesDataset) -> None:
    ok = ~np.isnan(dataset.log_returns)
    assert ok.mean() > 0.9
    back = scaled_to_log_return(dataset.targets.astype(np.float64), dataset.scales)
    np.testing.assert_allclose(back[ok], dataset.log_returns[ok], rtol=1e-6, atol=1e-12)
    z = dataset.targets[ok]
    assert 0.3 < float(np.mean(z.astype(np.float64) ** 2)) < 3.0


def test_scale_and_inputs_at_t_do_not_depend_on_later_candles(
    candles: pd.DataFrame, cfg: SSSDConfig, source: FeatureSource, dataset: SSSDTimeSeriesDataset
) -> None:
    t0 = pd.Timestamp("2020-03-11 13:35", tz="UTC")
    changed = _perturb_from(candles, t0, seed=1)
    other = SSSDTimeSeriesDataset.from_candles(
        changed, cfg, source.standardizer, require_targets=False
    )
    assert np.array_equal(other.decision_ns, dataset.decision_ns)
    before = np.flatnonzero(dataset.decision_ns <= t0.value)
    after = np.flatnonzero(dataset.decision_ns > t0.value + 3600 * 10**9)
    np.testing.assert_array_equal(other.scales[before], dataset.scales[before])
    assert not np.allclose(other.scales[after], dataset.scales[after], rtol=1e-9)
    last = before[-40:]
    for tf, x in dataset.get_batch(last)[0].items():
        assert torch.equal(other.get_batch(last)[0][tf], x), tf


def test_seasonal_fit_uses_the_training_range_only(
    candles: pd.DataFrame, cfg: SSSDConfig, source: FeatureSource
) -> None:
    assert source.target_seasonal is not None
    fitted = source.target_seasonal.to_dict()
    assert source.standardizer.meta[META_KEY] == fitted
    after_train = _perturb_from(candles, pd.Timestamp("2020-02-10", tz="UTC"), seed=2)
    assert build_feature_source(after_train, cfg).standardizer.meta[META_KEY] == fitted
    inside = _perturb_from(candles, pd.Timestamp("2020-02-03", tz="UTC"), seed=3)
    assert build_feature_source(inside, cfg).standardizer.meta[META_KEY] != fitted


def test_a_standardizer_without_the_fit_is_refused(candles: pd.DataFrame, cfg: SSSDConfig) -> None:
    built = multi_timeframe_features(candles, cfg)
    plain = Standardizer.fit(built.raw)
    with pytest.raises(CheckpointError, match="seasonal-EWMA fit"):
        build_feature_source(candles, cfg, plain)
    with pytest.raises(CheckpointError, match="seasonal-EWMA fit"):
        LiveFeatureWindows(cfg, plain)


# --------------------------------------------------------------------------- the checkpoint


def test_checkpoint_carries_the_options_to_the_inference_service(
    tmp_path: Path,
    candles: pd.DataFrame,
    cfg: SSSDConfig,
    source: FeatureSource,
    dataset: SSSDTimeSeriesDataset,
) -> None:
    model = build_sssd_model(cfg, {tf: len(n) for tf, n in source.feature_names.items()})
    path = save_checkpoint(
        tmp_path / "m.ckpt", model, cfg, source.feature_names, source.standardizer.to_dict()
    )
    service = SSSDInferenceService.from_checkpoint(path, device="cpu")
    t = pd.Timestamp("2020-03-12 15:00", tz="UTC")
    features = service.build_features(candles[candles.index < t])
    i = int(np.flatnonzero(dataset.decision_ns == t.value)[0])
    # the service's tail of history starts the EWMA later: equal up to its forgotten start
    np.testing.assert_allclose(features.scales[0], dataset.scales[i], rtol=1e-9)
    want, _, _ = dataset.get_batch([i])
    got, _, _ = features.get_batch([0])
    for tf in cfg.data.timeframes:
        assert got[tf].shape == want[tf].shape
    n5 = got["5m"].shape[-1]
    extras = len(har_names()) + len(TIME_OF_WEEK_NAMES)
    # the 5m extras are windowed sums/slot scales, independent of where the candles start
    torch.testing.assert_close(got["5m"][..., n5 - extras :], want["5m"][..., n5 - extras :])
    pred = service.predict(df=candles[candles.index < t], num_samples=8, seed=3)
    assert pred.timestamp == t


def test_evaluation_model_inputs_use_the_checkpoint_scale(
    candles: pd.DataFrame, cfg: SSSDConfig, source: FeatureSource, dataset: SSSDTimeSeriesDataset
) -> None:
    from forex_diffusion.evaluation.model_forecast import build_model_inputs

    model = build_sssd_model(cfg, {tf: len(n) for tf, n in source.feature_names.items()})
    service = SSSDInferenceService(model, cfg, source.standardizer, device="cpu")
    times = dataset.decision_times[(dataset.decision_times >= "2020-03-09")][:300:7]
    part = candles[candles.index >= pd.Timestamp("2020-02-10", tz="UTC")]
    inputs = build_model_inputs(part, cfg, service, times)
    assert inputs.dataset is not None and inputs.has_history.all()
    want = dataset.scales[np.searchsorted(dataset.decision_ns, times.as_unit("ns").asi8)]
    np.testing.assert_allclose(inputs.dataset.scales, want, rtol=1e-9)


# --------------------------------------------------------------------------- inputs


def test_realized_and_time_of_week_inputs(
    candles: pd.DataFrame, cfg: SSSDConfig, source: FeatureSource
) -> None:
    base = feature_names(cfg.features)
    assert source.feature_names["5m"] == [*base, *har_names(), *TIME_OF_WEEK_NAMES]
    assert all(source.feature_names[tf] == base for tf in ("15m", "1h", "4h"))
    built = multi_timeframe_features(candles, cfg)
    raw5 = built.raw["5m"]
    har = realized_features(candles).reindex(raw5.index)
    np.testing.assert_allclose(raw5[har_names()].to_numpy(), har.to_numpy(), rtol=1e-12)
    assert raw5.index[0] == built.bars["5m"].index[max(WINDOWS.values()) - 1]
    assert built.seasonal is not None
    open_ns = raw5.index.as_unit("ns").asi8
    f2 = built.seasonal.factors.at
    np.testing.assert_allclose(raw5["tow_log_scale"], 0.5 * np.log(f2(open_ns)))
    np.testing.assert_allclose(raw5["tow_log_scale_next"], 0.5 * np.log(f2(open_ns + FIVE.value)))
    # other timeframes are what the default config gives
    plain = multi_timeframe_features(candles, _config())
    for tf in ("15m", "1h", "4h"):
        pd.testing.assert_frame_equal(built.raw[tf], plain.raw[tf])


def test_incremental_5m_features_equal_batch_with_the_options() -> None:
    config = _config(*OPTIONS)
    candles = generate_synthetic_market("2020-01-01", "2020-02-20", seed=4)
    built = multi_timeframe_features(candles, config)
    feats = IncrementalTimeframeFeatures("5m", config.features, "1m", built.seasonal)
    rows, index = [], []
    for bar, ts in zip(bars_of(built.bars["5m"]), built.bars["5m"].index, strict=True):
        row = feats.update(bar)
        if row is not None:
            rows.append(row)
            index.append(ts)
    got = pd.DataFrame(rows, index=pd.DatetimeIndex(index), columns=feats.names)
    want = built.raw["5m"]
    assert list(got.columns) == list(want.columns) and got.index.equals(want.index)
    extras = [*har_names(), *TIME_OF_WEEK_NAMES]
    np.testing.assert_allclose(got[extras], want[extras], rtol=1e-9, atol=1e-12)
    # the features.names families (checked tightly in test_incremental_features): bb_pctb's
    # ratio of small differences rounds differently at a few bars
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-4, atol=1e-8)


def test_live_windows_equal_batch_windows_with_the_options() -> None:
    config = _config(*OPTIONS)
    candles = generate_synthetic_market("2020-01-01", "2020-02-20", seed=6)
    built = multi_timeframe_features(candles, config)
    standardizer = fit_standardizer(built.raw, config, built.seasonal)
    live = LiveFeatureWindows(config, standardizer)
    cut = candles.index >= pd.Timestamp("2020-02-18", tz="UTC")
    live.push(candles[~cut])
    checks = 0
    tail = candles[cut]
    for lo in range(0, len(tail), 97):
        live.push(tail.iloc[lo : lo + 97])
        now = tail.index[min(lo + 97, len(tail)) - 1] + pd.Timedelta(minutes=1)
        if lo % (97 * 5):
            continue
        part = candles[candles.index < now]
        batch = standardizer.transform(
            multi_timeframe_features(part, config, seasonal=built.seasonal).raw
        )
        for tf, window in live.windows().items():
            np.testing.assert_allclose(
                window, batch[tf].to_numpy()[-len(window) :], rtol=1e-5, atol=1e-5
            )
        checks += 1
    assert checks >= 3


# --------------------------------------------------------------------------- horizon weights


def test_equal_horizon_weights_give_the_plain_mean_loss() -> None:
    def loss(weights: str) -> tuple[float, float]:
        config = tiny_config([f"model.loss.horizon_weights={weights}"])
        torch.manual_seed(0)
        model = build_sssd_model(config, TINY_FEATURE_DIMS)
        feats = random_features(config, TINY_FEATURE_DIMS, batch=6)
        targets = torch.randn(6, 4, 1, generator=torch.Generator().manual_seed(1))
        t, eps = model.draw_noise(6, generator=torch.Generator().manual_seed(2))
        out = model(feats, targets, None, timesteps=t, noise=eps)
        return float(out.diffusion_loss.detach()), float(out.per_horizon.detach().mean())

    weighted, plain = loss("[1, 1, 1, 1]")
    assert weighted == pytest.approx(plain, rel=1e-6)
    default, plain_default = loss("[0.4, 0.3, 0.2, 0.1]")
    assert plain_default == pytest.approx(plain, rel=1e-6)
    assert default != pytest.approx(plain, rel=1e-3)


# --------------------------------------------------------------------------- training


def test_training_with_the_options_writes_a_checkpoint_the_service_honours(
    fx_dir: Path, tmp_path: Path
) -> None:
    """``forex-diffusion train`` with the options (config overrides): the checkpoint's config
    and standardizer carry them, and the service loaded from it builds the same scales and
    inputs as the training data module."""
    from forex_diffusion.training.data_module import SSSDDataModule
    from forex_diffusion.training.train_sssd import SSSDTrainer
    from training_utils import tiny_config as training_config
    from training_utils import two_month_store

    data_dir = two_month_store(fx_dir, tmp_path)
    config = training_config(tmp_path, *OPTIONS, "training.epochs=1")
    dm = SSSDDataModule(data_path=data_dir, config=config)
    result = SSSDTrainer(config).train(dm)
    assert result.status == "completed"
    service = SSSDInferenceService.from_checkpoint(result.best_checkpoint, device="cpu")
    assert service.config.data.target_scale == "seasonal_ewma"
    assert service.standardizer.meta[META_KEY] == dm.standardizer.meta[META_KEY]
    val = dm.val_dataset
    i = len(val) // 2
    t = val.decision_times[i]
    from forex_diffusion.data.store import CandleStore

    candles = CandleStore(data_dir).load("EURUSD", start=None, end=t, timeframe="1m")
    features = service.build_features(candles[candles.index < t])
    np.testing.assert_allclose(features.scales[0], val.scales[i], rtol=1e-9)
