"""Live forecasts: real EURUSD replayed bar by bar through POST /v1/bars; the streamed forecast
for bar t against the batch forecast for t with the same generator.

At a prime (and at every bar with ``reprime_every=1``) the live forecast IS the batch forecast
``predict(asof=t)``. Between primes the stream advances the S4D states by the new bars only,
which computes the encoder over the windows grown since the prime on features seeded at the
prime's anchor (see ``forex_diffusion.service.live``): the live forecast equals the batch
forecast on exactly those windows, built here from scratch for every bar. The difference to the
fixed-window batch forecast is measured and printed (``-s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from forex_diffusion.calibration.conformal import AdaptiveConformal, adaptive_conformal_samples
from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.sssd_dataset import SSSDTimeSeriesDataset
from forex_diffusion.data.store import CandleStore
from forex_diffusion.inference.sssd_inference import SSSDInferenceService, SSSDPrediction
from forex_diffusion.service.app import create_app
from forex_diffusion.service.live import live_generator
from fx_test_utils import load_fx
from service_utils import settings, trained_root

SEED = 11
TOL = 2e-5  # in forecast std: float32 rounding; far below any real difference
NO_ACI = ["inference.adaptive_conformal.live=false"]  # the model's own forecasts, to compare


@pytest.fixture(scope="module")
def trained(fx_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SSSDConfig:
    return trained_root(fx_dir, tmp_path_factory.mktemp("live"))


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {"timestamp": t.isoformat(), **{k: float(v) for k, v in row.items()}}
        for t, row in df[["open", "high", "low", "close", "volume"]].iterrows()
    ]


def _replay(
    client: TestClient, bars: pd.DataFrame, per_post: int
) -> tuple[list[dict[str, Any]], int]:
    """POST ``bars`` ``per_post`` at a time; the live forecasts in order, and posts made."""
    forecasts: list[dict[str, Any]] = []
    posts = 0
    for k in range(0, len(bars), per_post):
        r = client.post(
            "/v1/bars", json={"asset": "EURUSD", "candles": _rows(bars.iloc[k : k + per_post])}
        )
        assert r.status_code == 200, r.text
        forecasts += r.json()["forecasts"]
        posts += 1
    return forecasts, posts


def _gap(live: dict[str, Any], ref: SSSDPrediction) -> float:
    """Largest |live - ref| over mean/std/quantiles and horizons, relative to ref's std."""
    return max(
        abs(live[stat][str(h)] - getattr(ref, stat)[h]) / ref.std[h]
        for stat in ("mean", "std", "q05", "q50", "q95")
        for h in ref.horizons
    )


def _assert_same(live: dict[str, Any], ref: SSSDPrediction, what: str) -> float:
    """Same forecast up to float32 rounding of the two encoder paths (FFT convolution vs
    recurrence); returns the gap (in units of the forecast std)."""
    assert live["timestamp"] == ref.timestamp.isoformat(), what
    assert live["last_close"] == pytest.approx(ref.last_close, rel=1e-12), what
    gap = _gap(live, ref)
    assert gap < TOL, f"{what}: live differs from the batch by {gap:.2e} std"
    return gap


def _batch(svc: SSSDInferenceService, store: CandleStore, t: pd.Timestamp) -> SSSDPrediction:
    """The batch forecast for t: ``predict(asof=t)`` on the stored candles."""
    candles = store.load("EURUSD", start=t - svc.history_span - pd.Timedelta(days=1), end=t)
    return svc.predict(candles, asof=t, generator=live_generator(SEED, t))


def _grown(
    svc: SSSDInferenceService,
    store: CandleStore,
    t: pd.Timestamp,
    prime: pd.Timestamp,
    seen: dict[str, int],
) -> SSSDPrediction:
    """The batch forecast for t on the windows grown since ``prime`` (the prime's windows plus
    the bars seen since), features computed from the prime's anchor on: built from scratch."""
    lookbacks = {tf: n + seen[tf] for tf, n in svc.config.data.lookbacks.items()}
    spec = ", ".join(f"{tf}: {n}" for tf, n in lookbacks.items())
    config = svc.config_for_base("1m").with_overrides([f"data.lookbacks={{{spec}}}"])
    candles = store.load("EURUSD", start=prime - svc.history_span, end=t)
    dataset = SSSDTimeSeriesDataset.from_candles(
        candles, config, svc.standardizer, decision_times=[t], require_targets=False
    )
    return svc.predict_features(dataset, generator=live_generator(SEED, t))[0]


def _check_replay(
    trained: SSSDConfig,
    fx_dir: Path,
    data_dir: Path,
    store_end: str,
    replay_end: str,
    reprime_every: int,
    per_post: int,
    check_every: int = 1,
) -> list[dict[str, Any]]:
    CandleStore(data_dir).write(
        "EURUSD", load_fx(fx_dir, "2019-02-01", store_end), source="history"
    )
    bars = load_fx(fx_dir, store_end, replay_end)
    live = {"reprime_every": reprime_every, "seed": SEED}
    cfg = settings(trained.with_overrides(NO_ACI), data_dir=data_dir, live=live)
    with TestClient(create_app(cfg)) as client:
        forecasts, _ = _replay(client, bars, per_post)
        svc = client.app.state.service.pool.loaded()[0].service  # type: ignore[attr-defined]
    store = CandleStore(data_dir)
    five = pd.Timedelta(minutes=5)
    expected = store.load("EURUSD", start=pd.Timestamp(store_end, tz="UTC") - five, timeframe="5m")
    # one live forecast per 5m close, in order, from the last close of the history on (the
    # first post primes the stream at the latest close it completes)
    closes = [(t + five).isoformat() for t in expected.index]
    assert [f["timestamp"] for f in forecasts] == closes[-len(forecasts) :]
    assert len(forecasts) >= len(closes) - (per_post > 1)
    exact, drift = [], []
    prime = None
    for k, live in enumerate(forecasts):
        t = pd.Timestamp(live["timestamp"])
        if live["reprimed"]:
            prime = t
        assert prime is not None
        if k % check_every and not live["reprimed"]:
            continue
        batch = _batch(svc, store, t)
        if live["reprimed"]:
            assert all(v == 0 for v in live["bars_since_prime"].values())
            exact.append(_assert_same(live, batch, f"prime at {t}"))
        else:
            grown = _grown(svc, store, t, prime, live["bars_since_prime"])
            exact.append(_assert_same(live, grown, f"{t}"))
            drift.append(_gap(live, batch))
    primes = sum(f["reprimed"] for f in forecasts)
    print(f"\nlive vs batch on the same windows: max gap {max(exact):.1e} std ({len(exact)} bars)")
    if reprime_every == 1:
        assert primes == len(forecasts)
    else:
        assert len(forecasts) // reprime_every <= primes < len(forecasts)
        print(
            f"live vs fixed-window batch between primes (reprime_every={reprime_every}, "
            f"{len(drift)} bars): gap median {np.median(drift):.1e}, max {np.max(drift):.1e} std"
        )
        # the comparison tells the two apart: the grown windows are not the fixed ones
        assert np.median(drift) > 10 * max(exact)
    return forecasts


def test_live_across_the_weekend_equals_batch(
    trained: SSSDConfig, fx_dir: Path, tmp_path: Path
) -> None:
    """Friday afternoon to Monday 01:00, one 1m bar per POST: the weekend gap, 15m/1h/4h closes
    (the 4h bar of Friday 20:00 closes at the Sunday open) between primes every 10 bars."""
    forecasts = _check_replay(
        trained, fx_dir, tmp_path / "a", "2019-03-15 18:00", "2019-03-18 01:00", 10, per_post=1
    )
    seen = [f["bars_since_prime"] for f in forecasts]
    assert any(s["4h"] > 0 for s in seen) and any(s["1h"] > 0 for s in seen)


def test_live_reprime_every_bar_is_the_batch_forecast(
    trained: SSSDConfig, fx_dir: Path, tmp_path: Path
) -> None:
    _check_replay(
        trained, fx_dir, tmp_path / "b", "2019-03-15 19:00", "2019-03-15 21:00", 1, per_post=5
    )


@pytest.mark.slow
def test_live_week_equals_batch(trained: SSSDConfig, fx_dir: Path, tmp_path: Path) -> None:
    """A whole real EURUSD week (2019-03-18 .. 22), one 5m bar per POST; every prime and every
    7th bar between primes compared (7 is coprime with 12: every phase is covered)."""
    _check_replay(
        trained,
        fx_dir,
        tmp_path / "w",
        "2019-03-18",
        "2019-03-23",
        12,
        per_post=5,
        check_every=7,
    )


def _live_client(
    trained: SSSDConfig,
    fx_dir: Path,
    data_dir: Path,
    store_end: str,
    overrides: Sequence[str] = NO_ACI,
    **options: Any,
) -> tuple[TestClient, pd.DataFrame]:
    """A service whose store holds EURUSD up to ``store_end`` (re-prime every 50 bars; config
    ``overrides``, by default no adaptive conformal; more ``ServiceSettings`` in ``options``),
    and the 1m bars of the two hours after it."""
    CandleStore(data_dir).write(
        "EURUSD", load_fx(fx_dir, "2019-02-01", store_end), source="history"
    )
    end = pd.Timestamp(store_end, tz="UTC") + pd.Timedelta(hours=2)
    bars = load_fx(fx_dir, store_end, end.isoformat())
    live = {"reprime_every": 50, "seed": SEED}
    cfg = settings(trained.with_overrides(list(overrides)), data_dir=data_dir, live=live, **options)
    return TestClient(create_app(cfg)), bars


def _post(client: TestClient, bars: pd.DataFrame) -> dict[str, Any]:
    r = client.post("/v1/bars", json={"asset": "EURUSD", "candles": _rows(bars)})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_live_sees_bars_that_another_writer_stored(
    trained: SSSDConfig, fx_dir: Path, tmp_path: Path
) -> None:
    """Bars stored by another writer between two POSTs (here a second CandleStore, as a
    `data import` would) are forecast with the POSTed ones: the 5m closes of both are read
    from the store, each a step of the stream equal to the batch forecast on the windows
    grown since the prime."""
    data_dir = tmp_path / "d"
    client, bars = _live_client(trained, fx_dir, data_dir, "2019-03-14 10:00")
    with client:
        (prime,) = _post(client, bars.iloc[:5])["forecasts"]
        _post(client, bars.iloc[5:10])
        CandleStore(data_dir).write("EURUSD", bars.iloc[10:15], source="another writer")
        forecasts = _post(client, bars.iloc[15:20])["forecasts"]
        five = pd.Timedelta(minutes=5)
        assert [f["timestamp"] for f in forecasts] == [
            (bars.index[10] + five).isoformat(),
            (bars.index[15] + five).isoformat(),
        ]
        svc = client.app.state.service.pool.loaded()[0].service  # type: ignore[attr-defined]
        for live in forecasts:
            assert not live["reprimed"]
            t = pd.Timestamp(live["timestamp"])
            grown = _grown(
                svc,
                CandleStore(data_dir),
                t,
                pd.Timestamp(prime["timestamp"]),
                live["bars_since_prime"],
            )
            _assert_same(live, grown, f"step at {t}")


@pytest.mark.parametrize("bad", ["high_below_low", "misaligned"])
def test_a_refused_post_leaves_the_live_state_as_it_was(
    trained: SSSDConfig, fx_dir: Path, tmp_path: Path, bad: str
) -> None:
    """Bars that the store refuses give the store's 4xx and leave the live state as it was:
    nothing published, and the same bars sent correctly are the next step of the stream
    (equal to the batch forecast on the windows grown since the prime)."""
    data_dir = tmp_path / "d"
    client, bars = _live_client(trained, fx_dir, data_dir, "2019-03-14 10:00")
    with client:
        (prime,) = _post(client, bars.iloc[:5])["forecasts"]
        _post(client, bars.iloc[5:10])
        hub = client.app.state.service.hub  # type: ignore[attr-defined]
        before = hub.assets["EURUSD"].latest
        wrong = bars.iloc[10:15].copy()
        if bad == "high_below_low":
            wrong.iloc[2, wrong.columns.get_loc("high")] = wrong["low"].iloc[2] - 0.001
        else:
            wrong.index = wrong.index + pd.Timedelta(seconds=30)
        r = client.post("/v1/bars", json={"asset": "EURUSD", "candles": _rows(wrong)})
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["error"] == "DataError" and "bars for EURUSD" in r.json()["message"], r.text
        assert hub.assets["EURUSD"].latest is before
        (live,) = _post(client, bars.iloc[10:15])["forecasts"]
        assert live["timestamp"] == (bars.index[14] + pd.Timedelta(minutes=1)).isoformat()
        assert not live["reprimed"] and live["bars_since_prime"]["5m"] == 2
        svc = client.app.state.service.pool.loaded()[0].service  # type: ignore[attr-defined]
        t, start = pd.Timestamp(live["timestamp"]), pd.Timestamp(prime["timestamp"])
        grown = _grown(svc, CandleStore(data_dir), t, start, live["bars_since_prime"])
        _assert_same(live, grown, f"step at {t}")


@pytest.mark.slow
def test_live_with_compiled_sampling_equals_eager(
    trained: SSSDConfig, fx_dir: Path, tmp_path: Path
) -> None:
    """``compile_sampling``: the model's sampling loop (for the live forecast's shape), its
    encoder (for one forecast's windows) and its streaming update are compiled at load, and the
    live forecasts and a forecast from the store equal those of an eager service."""
    runs = []
    for name, compiled in (("eager", False), ("compiled", True)):
        client, bars = _live_client(
            trained, fx_dir, tmp_path / name, "2019-03-14 10:00", compile_sampling=compiled
        )
        with client:
            pool = client.app.state.service.pool  # type: ignore[attr-defined]
            runs.append(
                [
                    f
                    for k in range(0, 20, 5)
                    for f in _post(client, bars.iloc[k : k + 5])["forecasts"]
                ]
            )
            r = client.post("/v1/predict", json={"asset": "EURUSD", "seed": 5})  # batch 1
            assert r.status_code == 200, r.text
            runs[-1].append(r.json())
            model = pool.loaded()[0].service.model
            assert (model._compiled_solve is not None) == compiled
            assert (model.encoder.compiled_step_and_fuse is not None) == compiled
            assert (model._compiled_encoder is not None) == compiled
    eager, compiled_run = runs
    assert [f["timestamp"] for f in eager] == [f["timestamp"] for f in compiled_run]
    assert [f.get("reprimed") for f in compiled_run] == [True, False, False, False, None]
    for a, b in zip(eager, compiled_run, strict=True):
        for stat in ("mean", "std", "q05", "q50", "q95"):
            for h, value in a[stat].items():
                assert abs(b[stat][h] - value) < 1e-4 * a["std"][h], (a["timestamp"], stat, h)


def test_live_forecasts_adapt_to_their_outcomes_as_the_evaluation_replays_them(
    trained: SSSDConfig, fx_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With adaptive conformal on (the default), each live forecast is the model's forecast
    (the same bars replayed with it off) issued under levels moved by the outcomes of the
    earlier live forecasts, exactly as ``adaptive_conformal_samples`` (the evaluation's row)
    replays them: outcome log(close at t + h / close at t), used from the decision at t + h on.
    The payload carries the levels each forecast was issued with and summarises the adapted
    samples."""
    made: list[SSSDPrediction] = []
    original = SSSDInferenceService.predict_from_context

    def spy(self: SSSDInferenceService, *args: Any, **kwargs: Any) -> list[SSSDPrediction]:
        preds = original(self, *args, **kwargs)
        made.extend(preds)
        return preds

    monkeypatch.setattr(SSSDInferenceService, "predict_from_context", spy)
    gamma = 0.2  # large, so that two hours of outcomes move the levels visibly
    runs, preds = {}, {}
    for name, live in (("model", "false"), ("adaptive", "true")):
        made.clear()
        client, bars = _live_client(
            trained,
            fx_dir,
            tmp_path / name,
            "2019-03-14 10:00",
            [
                f"inference.adaptive_conformal.live={live}",
                f"inference.adaptive_conformal.gamma={gamma}",
            ],
        )
        with client:
            runs[name] = [
                f
                for k in range(0, 120, 5)
                for f in _post(client, bars.iloc[k : k + 5])["forecasts"]
            ]
        preds[name] = list(made)
    model, adaptive = runs["model"], runs["adaptive"]
    assert [f["timestamp"] for f in model] == [f["timestamp"] for f in adaptive]
    assert len(model) == 24 and all(f["adaptive_conformal"] is None for f in model)
    assert [p.timestamp.isoformat() for p in preds["adaptive"]] == [f["timestamp"] for f in model]
    times = pd.DatetimeIndex([p.timestamp for p in preds["model"]])
    close = pd.Series([p.last_close for p in preds["model"]], index=times)
    coverages = trained.inference.adaptive_conformal.coverages
    moved = 0
    for h in trained.data.horizons:

        def log_returns(p: SSSDPrediction, h: int = h) -> np.ndarray:
            return np.log1p(p.samples[h] / p.last_close)

        raw = np.stack([log_returns(p) for p in preds["model"]])
        y = np.log(close.reindex(times + pd.Timedelta(minutes=h)).to_numpy() / close.to_numpy())
        expected, used = adaptive_conformal_samples(
            raw,
            y,
            times.as_unit("ns").asi8,
            h,
            AdaptiveConformal(tuple(coverages), gamma),
            trained.inference.adaptive_conformal.by_session,
            trained.inference.adaptive_conformal.by_phase,
        )
        served = np.stack([log_returns(p) for p in preds["adaptive"]])
        np.testing.assert_allclose(served, expected, rtol=1e-9, atol=1e-15)
        for f, levels in zip(adaptive, used, strict=True):
            got = f["adaptive_conformal"]["levels"][str(h)]
            np.testing.assert_allclose([got[f"{c:g}"] for c in coverages], levels)
        moved += int(not np.allclose(used[-1], [1 - c for c in coverages]))
    assert moved == len(trained.data.horizons) - 1  # 240 min: no outcome known in two hours
    assert adaptive[-1]["adaptive_conformal"]["outcomes"] > 0
    for f, p in zip(adaptive, preds["adaptive"], strict=True):  # the payload is the served one
        assert f["q95"]["60"] == pytest.approx(p.q95[60], rel=1e-12)


RECIPE_OPTIONS = (  # issue 16's inputs and target scale: the warmed state carries them too
    "data.splits.train.start=2020-01-06",
    "data.splits.train.end=2020-02-05",
    "data.splits.val.start=2020-02-06",
    "data.splits.val.end=2020-02-10",
    "data.splits.test.start=2020-02-11",
    "data.splits.test.end=2020-02-28",
    "data.target_scale=seasonal_ewma",
    "features.realized=true",
    "features.time_of_week=true",
)


@pytest.mark.parametrize("options", [(), RECIPE_OPTIONS], ids=["default", "recipe_options"])
def test_warmed_feature_windows_continue_as_the_batch_pipeline(options: tuple[str, ...]) -> None:
    """``LiveFeatureWindows.warm`` (the live state's prime: bars by the batch resampling, each
    timeframe's smoothers fed only its last ``warm_bars``) then ``push``: the dataset of every
    later 5m close equals the batch dataset from the same first candle (windows, target
    scales, last close)."""
    from forex_diffusion.data.synthetic import generate_synthetic_market
    from forex_diffusion.features.standardizer import Standardizer
    from forex_diffusion.features.unified_pipeline import (
        fit_standardizer,
        multi_timeframe_features,
    )
    from forex_diffusion.inference.live_features import LiveFeatureWindows, warm_bars
    from sssd_test_utils import default_config

    config = default_config().with_overrides(list(options))
    candles = generate_synthetic_market("2020-01-06", "2020-02-15", seed=7)
    built = multi_timeframe_features(candles, config)
    standardizer = (
        fit_standardizer(built.raw, config, built.seasonal)
        if options
        else Standardizer.fit(built.raw)
    )
    t0 = pd.Timestamp("2020-02-12 10:00", tz="UTC")
    history = candles[candles.index < t0]
    primed = SSSDTimeSeriesDataset.from_candles(
        history, config, standardizer, decision_times=[t0], require_targets=False
    )
    live = LiveFeatureWindows(config, standardizer)
    live.warm(history, {tf: (b.values, b.open_ns) for tf, b in primed.source.blocks.items()})
    assert len(primed.source.blocks["5m"].values) > 2 * warm_bars(config.features)  # truncated
    feed = candles[(candles.index >= t0) & (candles.index < t0 + pd.Timedelta(hours=9))]
    checks, reprimed = 0, False
    bins = feed.index.floor("5min")
    for k, start in enumerate(bins.unique()):
        chunk = feed[bins == start]
        t = start + pd.Timedelta(minutes=5)
        if t == t0 + pd.Timedelta(hours=4, minutes=5):
            # a re-prime at the close of the previous bar: warmed again from the candles so
            # far, taking over the states of the timeframes with enough bars
            history = candles[candles.index < start]
            primed = SSSDTimeSeriesDataset.from_candles(
                history, config, standardizer, decision_times=[start], require_targets=False
            )
            again = LiveFeatureWindows(config, standardizer)
            rows = {tf: (b.values, b.open_ns) for tf, b in primed.source.blocks.items()}
            kept = dict(live.features)
            again.warm(history, rows, previous=live)
            assert again.features["5m"] is kept["5m"] and again.features["4h"] is not kept["4h"]
            live, reprimed = again, True
        live.push(chunk)
        if k % 7 or chunk.index[-1] != t - pd.Timedelta(minutes=1):
            continue  # (a 5m bar that lost its last candles is not a decision time)
        got = live.dataset(t)
        want = SSSDTimeSeriesDataset.from_candles(
            candles[candles.index < t],
            config,
            standardizer,
            decision_times=[t],
            require_targets=False,
        )
        for tf, x in want.get_batch([0])[0].items():
            assert np.allclose(got.get_batch([0])[0][tf], x, rtol=1e-5, atol=1e-5), (tf, t)
        np.testing.assert_allclose(got.scales, want.scales, rtol=1e-9)
        assert got.last_close[0] == want.last_close[0] and got.decision_times[0] == t
        checks += 1
    assert checks >= 15 and reprimed
