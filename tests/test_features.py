"""Feature families against straightforward loop references, and the multi-timeframe pipeline."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.config.sssd_config import config_from_dict
from forex_diffusion.errors import ConfigError, DataError
from forex_diffusion.features import indicators as ind
from forex_diffusion.features.unified_pipeline import (
    feature_names,
    feature_warmup,
    multi_timeframe_features,
    unified_feature_pipeline,
)
from fx_test_utils import load_fx, make_config

# ----------------------------------------------------------------------------- helpers


def random_bars(n: int = 300, seed: int = 3, freq: str = "5min") -> pd.DataFrame:
    """Small OHLCV bar frame with a few gaps and flat stretches."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-03-01 20:00", periods=n + 20, freq=freq, tz="UTC")
    idx = idx.delete(rng.choice(np.arange(5, n + 15), size=20, replace=False))
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 4e-4, n)))
    close[100:115] = close[99]  # a flat stretch
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 1e-4, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 2e-4, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 2e-4, n)))
    high[100:115] = low[100:115] = open_[100:115] = close[100:115]
    vol = rng.integers(0, 50, n).astype(float)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": vol}, index=idx
    )


def close_(a: np.ndarray, b: np.ndarray, rtol: float = 1e-9, atol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


def ref_ema(x: list[float], span: int) -> list[float]:
    alpha = 2.0 / (span + 1)
    out, e = [], math.nan
    for v in x:
        e = v if math.isnan(e) else e + alpha * (v - e)
        out.append(e)
    return out


def ref_wilder(x: list[float], n: int) -> list[float]:
    """x[0] is NaN; seed = mean(x[1..n]) at index n."""
    out = [math.nan] * len(x)
    for i in range(len(x)):
        if i == n:
            out[i] = sum(x[1 : n + 1]) / n
        elif i > n:
            out[i] = out[i - 1] + (x[i] - out[i - 1]) / n
    return out


def ref_true_range(b: pd.DataFrame) -> list[float]:
    tr = [math.nan]
    for i in range(1, len(b)):
        h, lo, pc = b.high.iloc[i], b.low.iloc[i], b.close.iloc[i - 1]
        tr.append(max(h - lo, abs(h - pc), abs(lo - pc)))
    return tr


def ref_rsi(close: list[float], n: int) -> list[float]:
    gains, losses = [math.nan], [math.nan]
    for i in range(1, len(close)):
        d = close[i] - close[i - 1]
        gains.append(max(d, 0.0))
        losses.append(max(-d, 0.0))
    g, lo = ref_wilder(gains, n), ref_wilder(losses, n)
    out = []
    for a, b in zip(g, lo, strict=True):
        if math.isnan(a):
            out.append(math.nan)
        elif a + b == 0:
            out.append(50.0)
        else:
            out.append(100.0 - 100.0 / (1.0 + a / b) if b > 0 else 100.0)
    return out


# ----------------------------------------------------------------------------- families


def test_returns_range_body_against_loop() -> None:
    b = random_bars()
    got = ind.log_returns(b)
    rb = ind.range_body(b)
    for i in range(1, len(b)):
        pc = b.close.iloc[i - 1]
        for col in ("open", "high", "low", "close"):
            assert got[f"r_{col}"].iloc[i] == pytest.approx(
                math.log(b[col].iloc[i] / pc), abs=1e-15
            )
        assert rb.hl_range.iloc[i] == pytest.approx(math.log(b.high.iloc[i] / b.low.iloc[i]))
        assert rb.body.iloc[i] == pytest.approx(math.log(b.close.iloc[i] / b.open.iloc[i]))
    assert got.iloc[0].isna().all()


def test_realized_vol_against_loop() -> None:
    b = random_bars()
    got = ind.realized_vol(b.close, (6, 12))
    c = b.close.to_list()
    for w in (6, 12):
        ref = [math.nan] * len(c)
        for i in range(w, len(c)):
            ref[i] = math.sqrt(
                sum(math.log(c[k] / c[k - 1]) ** 2 for k in range(i - w + 1, i + 1)) / w
            )
        close_(got[f"rv_{w}"].to_numpy(), np.array(ref))


def test_atr_rsi_against_wilder_loops() -> None:
    b = random_bars()
    atr = ind.atr(b, 14)["atr_14"].to_numpy()
    ref = np.array(ref_wilder(ref_true_range(b), 14)) / b.close.to_numpy()
    close_(atr, ref)
    rsi = ind.rsi(b.close, 14)["rsi_14"].to_numpy()
    close_(rsi, np.array(ref_rsi(b.close.to_list(), 14)))
    assert np.isnan(rsi[:14]).all() and np.isfinite(rsi[14:]).all()
    flat = pd.Series(np.full(40, 1.1))
    assert ind.rsi(flat, 14)["rsi_14"].iloc[-1] == 50.0


def test_bollinger_donchian_against_loops() -> None:
    b = random_bars()
    bb = ind.bollinger(b.close, 20, 2.0)
    dc = ind.donchian(b, 20)
    c = b.close.to_list()
    for i in range(19, len(c)):
        win = c[i - 19 : i + 1]
        m = sum(win) / 20
        sd = math.sqrt(sum((v - m) ** 2 for v in win) / 20)
        if sd > 1e-12 * m:
            assert bb.bb_pctb.iloc[i] == pytest.approx((c[i] - (m - 2 * sd)) / (4 * sd), rel=1e-7)
        else:
            assert bb.bb_pctb.iloc[i] == 0.5
        assert bb.bb_width.iloc[i] == pytest.approx(4 * sd / m, rel=1e-7, abs=1e-15)
        hh, ll = max(b.high.iloc[i - 19 : i + 1]), min(b.low.iloc[i - 19 : i + 1])
        pos = 0.5 if hh == ll else (c[i] - ll) / (hh - ll)
        assert dc.donchian_pos.iloc[i] == pytest.approx(pos, rel=1e-12)
        assert dc.donchian_width.iloc[i] == pytest.approx(math.log(hh / ll), abs=1e-15)
    assert bb.iloc[:19].isna().all().all() and dc.iloc[:19].isna().all().all()


def test_macd_ema_distance_against_loops() -> None:
    b = random_bars()
    c = b.close.to_list()
    got = ind.macd(b, 12, 26, 9, 14)
    line = [f - s for f, s in zip(ref_ema(c, 12), ref_ema(c, 26), strict=True)]
    sig = ref_ema(line, 9)
    atr = ref_wilder(ref_true_range(b), 14)
    ref_line = [
        math.nan if math.isnan(a) else (0.0 if a == 0 else x / a)
        for x, a in zip(line, atr, strict=True)
    ]
    ref_sig = [
        math.nan if math.isnan(a) else (0.0 if a == 0 else x / a)
        for x, a in zip(sig, atr, strict=True)
    ]
    close_(got.macd.to_numpy(), np.array(ref_line), rtol=1e-8, atol=1e-12)
    close_(got.macd_signal.to_numpy(), np.array(ref_sig), rtol=1e-8, atol=1e-12)
    dist = ind.ema_distance(b.close, (12, 48))
    for w in (12, 48):
        close_(dist[f"ema_dist_{w}"].to_numpy(), np.log(np.array(c) / np.array(ref_ema(c, w))))


def test_calendar_sessions_gap_volume_against_loops() -> None:
    b = random_bars(n=400, freq="15min")
    b.index = b.index + pd.Timedelta(days=40)  # crosses the US/EU DST switches of 2021
    cal = ind.calendar(b.index)
    ses = ind.sessions(b.index)
    n_base = np.arange(len(b)) % 15 + 1
    gp = ind.gap(b.index, 15, n_base=n_base, base_minutes=1)
    zones = {
        "tokyo": ("Asia/Tokyo", 9, 18),
        "london": ("Europe/London", 8, 17),
        "newyork": ("America/New_York", 8, 17),
    }
    for i, ts in enumerate(b.index):
        dt = ts.to_pydatetime()
        frac = (dt.hour * 3600 + dt.minute * 60) / 86400
        assert cal.hour_sin.iloc[i] == pytest.approx(math.sin(2 * math.pi * frac), abs=1e-12)
        assert cal.hour_cos.iloc[i] == pytest.approx(math.cos(2 * math.pi * frac), abs=1e-12)
        wk = (dt.weekday() + frac) / 7
        assert cal.dow_sin.iloc[i] == pytest.approx(math.sin(2 * math.pi * wk), abs=1e-12)
        assert cal.dow_cos.iloc[i] == pytest.approx(math.cos(2 * math.pi * wk), abs=1e-12)
        for name, (zone, a, z) in zones.items():
            local = datetime.fromtimestamp(dt.timestamp(), tz=UTC).astimezone(ZoneInfo(zone))
            h = local.hour + local.minute / 60
            assert ses[f"session_{name}"].iloc[i] == float(a <= h < z), (ts, name)
        if i:
            mins = (ts - b.index[i - 1]).total_seconds() / 60
            assert gp.gap_log.iloc[i] == pytest.approx(math.log(mins / 15), abs=1e-12)
        assert gp.bar_fill.iloc[i] == pytest.approx(min(n_base[i] / 15, 1.0))
    assert set(np.unique(ses.to_numpy())) == {0.0, 1.0}
    vol = ind.volume(b.volume, 10)
    v = b.volume.to_list()
    for i in range(9, len(v)):
        win = [x for x in v[i - 9 : i + 1] if x > 0]
        mean = sum(win) / len(win) if win else 0.0
        ref = math.log(v[i] / mean) if v[i] > 0 and mean > 0 else 0.0
        assert vol.volume_ratio.iloc[i] == pytest.approx(ref, abs=1e-12)
        assert vol.volume_present.iloc[i] == float(v[i] > 0)


def test_features_are_scale_free(default_config_path: Path) -> None:
    cfg = make_config(default_config_path).features
    b = random_bars(n=400)
    b["n_base"] = 5
    scaled = b.copy()
    scaled[["open", "high", "low", "close"]] *= 123.456
    from forex_diffusion.features.unified_pipeline import compute_timeframe_features

    a = compute_timeframe_features(b, "5m", cfg, "1m")
    s = compute_timeframe_features(scaled, "5m", cfg, "1m")
    close_(a.to_numpy(), s.to_numpy(), rtol=1e-6, atol=1e-9)
    assert len(a) == len(b) - feature_warmup(cfg)
    assert list(a.columns) == feature_names(cfg)


# ----------------------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def q1(fx_dir: Path) -> pd.DataFrame:
    return load_fx(fx_dir, "2019-01-01", "2019-04-01")


def test_higher_timeframe_rsi_comes_from_its_own_bars(
    q1: pd.DataFrame, default_config_path: Path
) -> None:
    cfg = make_config(default_config_path)
    raw = multi_timeframe_features(q1, cfg).raw
    # independent 1h bars with pandas resample, empty hours dropped
    h1 = (
        q1.resample("1h", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last"})
        .dropna()
    )
    h1 = h1[h1.index + pd.Timedelta(hours=1) <= q1.index[-1] + pd.Timedelta(minutes=1)]
    ref = pd.Series(ref_rsi(h1.close.to_list(), 14), index=h1.index)
    got = raw["1h"]["rsi_14"]
    assert got.index[0] == h1.index[feature_warmup(cfg.features)]
    close_(got.to_numpy(), ref.loc[got.index].to_numpy(), rtol=1e-9)
    # the pipeline's standardized output carries the same values
    frames, std, names = unified_feature_pipeline(q1, cfg, "multi_timeframe")
    assert isinstance(frames, dict) and isinstance(names, dict)
    col = names["1h"].index("rsi_14")
    back = std.inverse_values("1h", frames["1h"].to_numpy())[:, col]
    close_(back, ref.loc[frames["1h"].index].to_numpy(), rtol=1e-5)
    # ...and is not the 5m RSI read at the hourly clock
    r5 = raw["5m"]["rsi_14"]
    at_close = r5.reindex(got.index + pd.Timedelta(minutes=55)).to_numpy()
    ok = ~np.isnan(at_close)
    assert np.mean(np.abs(at_close[ok] - got.to_numpy()[ok])) > 5.0
    # 4h ATR from independently resampled 4h bars
    h4 = (
        q1.resample("4h", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last"})
        .dropna()
    )
    h4 = h4[h4.index + pd.Timedelta(hours=4) <= q1.index[-1] + pd.Timedelta(minutes=1)]
    atr_ref = pd.Series(
        np.array(ref_wilder(ref_true_range(h4), 14)) / h4.close.to_numpy(), index=h4.index
    )
    close_(raw["4h"]["atr_14"].to_numpy(), atr_ref.loc[raw["4h"].index].to_numpy(), rtol=1e-9)


def test_pipeline_formats_and_warmup(q1: pd.DataFrame, default_config_path: Path) -> None:
    cfg = make_config(default_config_path)
    frames, std, names = unified_feature_pipeline(q1, cfg, "multi_timeframe")
    assert isinstance(frames, dict) and isinstance(names, dict)
    assert list(frames) == ["5m", "15m", "1h", "4h"]
    f = len(feature_names(cfg.features))
    for tf, frame in frames.items():
        assert frame.shape[1] == f == len(names[tf])
        assert frame.dtypes.eq(np.float32).all()
        assert np.isfinite(frame.to_numpy()).all()
        assert frame.index.is_monotonic_increasing
    seq, std2, seq_names = unified_feature_pipeline(q1, cfg, "sequence", standardizer=std)
    assert std2 is std
    assert isinstance(seq, pd.DataFrame)
    pd.testing.assert_frame_equal(seq, frames["5m"])
    assert seq_names == names["5m"]
    flat, _, flat_names = unified_feature_pipeline(q1, cfg, "flat", standardizer=std)
    assert isinstance(flat, pd.DataFrame)
    assert flat.shape[1] == 4 * f and list(flat.columns) == flat_names
    # a flat row holds, for each timeframe, the last bar that CLOSED at or before t
    rng = np.random.default_rng(0)
    for t in flat.index[rng.choice(len(flat), 25, replace=False)]:
        for tf, minutes in (("5m", 5), ("15m", 15), ("1h", 60), ("4h", 240)):
            fr = frames[tf]
            closed = fr[fr.index + pd.Timedelta(minutes=minutes) <= t]
            np.testing.assert_array_equal(
                flat.loc[t, [f"{tf}_{n}" for n in names[tf]]].to_numpy(np.float32),
                closed.iloc[-1].to_numpy(),
            )
    with pytest.raises(ConfigError, match="full SSSDConfig"):
        unified_feature_pipeline(q1, cfg.features, "flat")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output_format"):
        unified_feature_pipeline(q1, cfg, "wide")  # type: ignore[arg-type]


def test_pipeline_never_refits_a_given_standardizer(
    q1: pd.DataFrame, default_config_path: Path
) -> None:
    cfg = make_config(default_config_path)
    _, std, _ = unified_feature_pipeline(q1, cfg, "sequence")
    later = q1[q1.index >= pd.Timestamp("2019-02-15", tz="UTC")]
    # after the training split: fitting is impossible, applying the fitted one works
    with pytest.raises(DataError, match="training split"):
        unified_feature_pipeline(later, cfg, "sequence")
    out, std2, _ = unified_feature_pipeline(later, cfg, "sequence", standardizer=std)
    assert std2 is std and len(out) > 1000


def test_bad_candles_are_rejected(q1: pd.DataFrame, default_config_path: Path) -> None:
    cfg = make_config(default_config_path)
    small = q1.iloc[:5000].copy()
    nan = small.copy()
    nan.iloc[100, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        unified_feature_pipeline(nan, cfg)
    unsorted = small.iloc[::-1]
    with pytest.raises(DataError, match="not sorted"):
        unified_feature_pipeline(unsorted, cfg)
    five = make_config(default_config_path)
    data = five.to_dict()
    data["asset"]["base_timeframe"] = "5m"
    with pytest.raises(DataError, match="5m grid"):
        unified_feature_pipeline(small, config_from_dict(data))
    data = five.to_dict()
    data["features"]["names"] = [*data["features"]["names"], "volume"]
    with pytest.raises(DataError, match="zero volume"):
        unified_feature_pipeline(small, config_from_dict(data))


def test_volume_features_when_volume_exists(
    synth_month: pd.DataFrame, default_config_path: Path
) -> None:
    data = make_config(
        default_config_path,
        train=("2021-03-01", "2021-03-20"),
        val=("2021-03-21", "2021-03-24"),
        test=("2021-03-25", "2021-03-28"),
    ).to_dict()
    data["features"]["names"] = ["returns", "volume"]
    cfg = config_from_dict(data)
    candles = synth_month.copy()
    candles["volume"] = np.random.default_rng(1).integers(0, 9, len(candles)).astype(float)
    frames, _, names = unified_feature_pipeline(candles, cfg, "multi_timeframe")
    assert isinstance(names, dict)
    assert names["1h"] == ["r_open", "r_high", "r_low", "r_close", "volume_ratio", "volume_present"]
    assert isinstance(frames, dict) and np.isfinite(frames["1h"].to_numpy()).all()
    assert frames["5m"]["volume_ratio"].std() > 0.5  # standardized, not constant


def test_five_minute_base_candles_give_the_same_features(
    q1: pd.DataFrame, default_config_path: Path
) -> None:
    from forex_diffusion.data.resample import resample_ohlc

    cfg = make_config(default_config_path)
    data = cfg.to_dict()
    data["asset"]["base_timeframe"] = "5m"
    cfg5 = config_from_dict(data)
    m1 = q1.copy()
    m1.index = m1.index.as_unit("ns")
    m5 = resample_ohlc(m1, "5m").drop(columns=["n_base"])
    raw1 = multi_timeframe_features(q1, cfg).raw
    raw5 = multi_timeframe_features(m5, cfg5).raw
    for tf in ("15m", "1h", "4h"):
        a, b = raw1[tf].drop(columns=["bar_fill"]), raw5[tf].drop(columns=["bar_fill"])
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    assert (raw5["5m"]["bar_fill"] == 1.0).all() and (raw1["5m"]["bar_fill"] <= 1.0).all()
