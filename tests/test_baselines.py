"""Baseline forecasters: no look-ahead, tuning, seasonality, and GARCH against ``arch``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from arch import arch_model

from forex_diffusion.config.sssd_config import EvaluationConfig, load_sssd_config
from forex_diffusion.data.candles import validate_candles
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.data.synthetic import (
    SyntheticMarketSpec,
    _seasonal_scale,
    generate_synthetic_market,
)
from forex_diffusion.errors import DataError
from forex_diffusion.evaluation.targets import (
    close_at,
    realized_log_returns,
    select_decision_times,
)
from forex_diffusion.features.volatility import _PY_EWMA_MAX, _ewma_recursion, ewma_states
from forex_diffusion.models.baselines import (
    Baseline,
    EwmaVolBaseline,
    GarchBaseline,
    RollingVolBaseline,
    SeasonalEwmaBaseline,
    build_baselines,
    fit_garch,
    five_minute_returns,
    garch_horizon_variance,
)

HORIZONS = (5, 15, 60, 240)
LAMBDAS = (0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999)
FIVE = pd.Timedelta(minutes=5)


def _five(candles: pd.DataFrame) -> pd.DataFrame:
    return resample_ohlc(validate_candles(candles), "5m")


@pytest.fixture(scope="module")
def eurusd_1m(fx_dir: Path) -> pd.DataFrame:
    """About five and a half weeks of real EURUSD 1m bars (2019-01-01 .. 2019-02-08)."""
    raw = pd.read_csv(fx_dir / "EURUSD_M1_2019.csv.gz", nrows=40_000)
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw.pop("timestamp"), utc=True), name="timestamp")
    return validate_candles(raw)


@pytest.fixture(scope="module")
def synth_1m(synth_month: pd.DataFrame) -> pd.DataFrame:
    return validate_candles(synth_month)


@pytest.fixture(scope="module")
def seasonal_1m() -> pd.DataFrame:
    """Four weeks of a synthetic market whose volatility is purely seasonal (no GARCH bursts)."""
    spec = SyntheticMarketSpec(garch_alpha=0.0, garch_beta=0.0, student_df=30.0)
    return validate_candles(
        generate_synthetic_market("2021-03-01", "2021-03-29", seed=3, spec=spec)
    )


def _all_baselines(garch_window: int = 1000, refit_every: int = 40) -> list[Baseline]:
    return [
        RollingVolBaseline(288),
        EwmaVolBaseline(LAMBDAS),
        SeasonalEwmaBaseline(LAMBDAS, slot_minutes=60, prior_count=20.0),
        GarchBaseline(garch_window, refit_every, "t"),
    ]


def _split(bars: pd.DataFrame, days: int) -> tuple[pd.DataFrame, pd.Timestamp]:
    cut = (bars.index[0] + pd.Timedelta(days=days)).floor("D")
    return bars[bars.index + FIVE <= cut], cut


# --------------------------------------------------------------------------- returns and targets


def test_five_minute_returns_skip_gaps() -> None:
    idx = pd.DatetimeIndex(
        [
            "2021-03-01 00:00",
            "2021-03-01 00:05",
            "2021-03-01 00:10",
            "2021-03-01 00:30",
            "2021-03-01 00:35",
        ],
        tz="UTC",
    )
    closes = pd.Series([1.0, 1.1, 1.21, 2.0, 2.2], index=idx)
    rs = five_minute_returns(closes)
    np.testing.assert_allclose(rs.returns, np.log([1.1, 1.1, 1.1]))
    # the 00:10 -> 00:30 jump is no 5m return
    np.testing.assert_array_equal(rs.known, [0, 0, 1, 2, 2, 3])
    times = pd.DatetimeIndex(["2021-03-01 00:09", "2021-03-01 00:10", "2021-03-01 00:40"], tz="UTC")
    np.testing.assert_array_equal(rs.known_at(times), [0, 1, 3])  # the 00:05 bar closes at 00:10
    with pytest.raises(DataError, match="5-minute grid"):
        five_minute_returns(pd.Series([1.0, 1.0], index=idx[:2] + pd.Timedelta(minutes=1)))
    with pytest.raises(DataError, match="positive"):
        five_minute_returns(pd.Series([1.0, -1.0], index=idx[:2]))


def test_targets_and_decision_times() -> None:
    idx = pd.date_range("2021-03-01 00:00", periods=30, freq="5min", tz="UTC").delete([20])
    bars = pd.DataFrame(
        {"close": np.exp(np.arange(30.0) / 100).take(np.r_[0:20, 21:30])}, index=idx
    )
    times = select_decision_times(bars, "2021-03-01 00:30", "2021-03-01 02:00", stride=3)
    # closes on the 15-minute grid; the bar 01:40-01:45 is missing
    assert list(times.strftime("%H:%M")) == ["00:30", "00:45", "01:00", "01:15", "01:30"]
    y = realized_log_returns(bars, times, (5, 15, 30))
    # close(t) of bar i is exp(i/100): bar opening at 00:25 has i = 5
    assert y[0, 0] == pytest.approx(0.01) and y[0, 2] == pytest.approx(0.06)
    t_gap = times.get_loc(pd.Timestamp("2021-03-01 01:30", tz="UTC"))
    assert np.isnan(y[t_gap, 1])  # close(01:45) is the missing bar
    assert np.isfinite(y[t_gap, 0]) and np.isfinite(y[t_gap, 2])
    assert np.isnan(close_at(bars, pd.DatetimeIndex(["2021-03-01 01:45"], tz="UTC")))[0]
    # a decision time that is no bar close has no targets (rather than an error)
    odd = realized_log_returns(
        bars, pd.DatetimeIndex(["2021-03-01 00:31", "2021-03-01 00:30"], tz="UTC"), (5,)
    )
    assert np.isnan(odd[0, 0]) and odd[1, 0] == pytest.approx(0.01)


# --------------------------------------------------------------------------- no look-ahead


def _perturb_after(candles: pd.DataFrame, t: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Scale every OHLC of bars opening at or after t by a random factor, drop a few of them."""
    rng = np.random.default_rng(seed)
    out = candles.copy()
    after = out.index >= t
    factor = np.exp(rng.normal(0, 2e-3, after.sum()))
    for col in ("open", "high", "low", "close"):
        out.loc[after, col] = out.loc[after, col].to_numpy() * factor
    drop = np.flatnonzero(after)[rng.random(after.sum()) < 0.05]
    return out.drop(out.index[drop])


def _check_no_lookahead(candles: pd.DataFrame) -> None:
    bars = _five(candles)
    train, cut = _split(bars, 14)
    times = select_decision_times(bars, cut, bars.index[-1], stride=6)
    t_star = times[len(times) // 2]
    earlier = times <= t_star
    perturbed = _five(_perturb_after(candles, t_star, seed=1))
    truncated = _five(candles[candles.index < t_star])
    for bl in _all_baselines():
        bl.fit(train)
        base = bl.forecast(bars, times, HORIZONS)
        assert base.valid()[earlier].mean() > 0.9, bl.name
        changed = bl.forecast(perturbed, times, HORIZONS)
        cut_off = bl.forecast(truncated, times, HORIZONS)
        # the whole predictive law (std, and the t's tail for GARCH-t) through its quantiles
        q = np.array([0.01, 0.5, 0.99])
        b, c, k = (f.quantile(q) for f in (base, changed, cut_off))
        np.testing.assert_array_equal(b[:, earlier], c[:, earlier], err_msg=bl.name)
        np.testing.assert_array_equal(b[:, earlier], k[:, earlier], err_msg=bl.name)
        # the check can fail: later forecasts do see the perturbation
        assert not np.allclose(b[:, ~earlier], c[:, ~earlier], equal_nan=True), bl.name


def test_no_lookahead_real_eurusd(eurusd_1m: pd.DataFrame) -> None:
    _check_no_lookahead(eurusd_1m)


def test_no_lookahead_synthetic(synth_1m: pd.DataFrame) -> None:
    _check_no_lookahead(synth_1m)


# --------------------------------------------------------------------------- rolling / EWMA


def test_rolling_matches_a_direct_computation(synth_1m: pd.DataFrame) -> None:
    bars = _five(synth_1m)
    train, cut = _split(bars, 7)
    times = select_decision_times(bars, cut, bars.index[-1], stride=12)[:40]
    f = RollingVolBaseline(100).fit(train).forecast(bars, times, HORIZONS)
    assert f.scale is not None and f.loc is not None
    for i in (0, 17, 39):
        past = bars[bars.index + FIVE <= times[i]]
        contiguous = np.diff(past.index.asi8) == FIVE.value
        r = np.diff(np.log(past["close"].to_numpy()))[contiguous][-100:]
        np.testing.assert_allclose(
            f.scale[i] ** 2, np.mean(r**2) * np.array(HORIZONS) / 5, rtol=1e-9
        )
    assert (f.loc[f.valid()] == 0).all()


def test_ewma_states_have_lfilters_bits_at_every_length() -> None:
    """Short series run the recursion in Python (no scipy.signal import for a forecast), long
    ones through lfilter: both give lfilter's bits, on either side of the switch."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(3)
    for k in (1, 2, 50, 3000, _PY_EWMA_MAX, _PY_EWMA_MAX + 1):
        x2 = (rng.standard_t(4, k) * 1e-4) ** 2
        x2[k // 2] = 0.0
        for lam in (0.8, 0.97, 0.995):
            init = float(np.mean(x2)) * 1.3
            y, _ = lfilter([1.0 - lam], [1.0, -lam], x2, zi=[lam * init])
            states = ewma_states(x2, lam, init)
            assert states[0] == init
            np.testing.assert_array_equal(states[1:], y)  # exact, not close
            if k > _PY_EWMA_MAX:
                np.testing.assert_array_equal(_ewma_recursion(x2.tolist(), lam, lam * init), y)
    assert ewma_states(np.zeros(0), 0.9, 2.0).tolist() == [2.0]


def test_ewma_lambda_tuning_is_plausible_on_real_data(eurusd_1m: pd.DataFrame) -> None:
    bars = _five(eurusd_1m)
    train, _ = _split(bars, 28)
    for objective in ("loglik", "crps"):
        bl = EwmaVolBaseline(LAMBDAS, objective).fit(train)
        assert bl.lambda_ is not None
        # intraday 5m FX volatility decays within hours: λ well inside the grid
        assert 0.85 <= bl.lambda_ <= 0.99, (objective, bl.lambda_, bl.scores_)
        scores = np.array([bl.scores_[lam] for lam in LAMBDAS])
        best = scores.max() if objective == "loglik" else scores.min()
        assert bl.scores_[bl.lambda_] == best
        # and it beats the extremes of the grid clearly
        worse = scores[[0, -1]]
        assert (worse < best).all() if objective == "loglik" else (worse > best).all()


def test_seasonal_factors_recover_the_synthetic_pattern(seasonal_1m: pd.DataFrame) -> None:
    bars = _five(seasonal_1m)
    bl = SeasonalEwmaBaseline(LAMBDAS, slot_minutes=60, prior_count=5.0).fit(bars)
    assert bl.factors_ is not None
    labels = bars.index[1:]
    est = bl.factors_.at(labels.as_unit("ns").asi8)
    truth = _seasonal_scale(labels) ** 2  # variance multiplier at each bar
    assert np.corrcoef(est, truth)[0, 1] > 0.9


def test_seasonal_variance_sums_future_slot_factors(synth_1m: pd.DataFrame) -> None:
    bars = _five(synth_1m)
    train, cut = _split(bars, 14)
    bl = SeasonalEwmaBaseline(LAMBDAS).fit(train)
    times = select_decision_times(bars, cut, bars.index[-1], stride=12)[:30]
    f = bl.forecast(bars, times, HORIZONS)
    assert bl.factors_ is not None and f.scale is not None
    for i in (0, 11, 29):
        future = times[i] + FIVE * np.arange(48)
        cum = np.cumsum(bl.factors_.at(pd.DatetimeIndex(future).as_unit("ns").asi8))
        ratio = f.scale[i] ** 2 / f.scale[i, 0] ** 2
        np.testing.assert_allclose(ratio, cum[np.array(HORIZONS) // 5 - 1] / cum[0], rtol=1e-9)


def test_seasonal_ewma_beats_plain_ewma_on_seasonal_synthetic_data(
    seasonal_1m: pd.DataFrame,
) -> None:
    bars = _five(seasonal_1m)
    train, cut = _split(bars, 14)
    times = select_decision_times(bars, cut, bars.index[-1], stride=3)
    y = realized_log_returns(bars, times, HORIZONS)
    crps = {}
    for bl in (EwmaVolBaseline(LAMBDAS), SeasonalEwmaBaseline(LAMBDAS)):
        crps[bl.name] = np.nanmean(bl.fit(train).forecast(bars, times, HORIZONS).crps(y), axis=0)
    assert (crps["ewma_seasonal"] < crps["ewma"]).all(), crps


# --------------------------------------------------------------------------- GARCH


@pytest.mark.parametrize("dist", ["t", "normal"])
def test_garch_variance_matches_arch_forecast(eurusd_1m: pd.DataFrame, dist: str) -> None:
    r = five_minute_returns(_five(eurusd_1m)).returns[:1500]
    fit = fit_garch(r, dist)
    assert 0 < fit.alpha < 1 and 0 < fit.beta < 1 and fit.alpha + fit.beta < 1
    params = [fit.omega, fit.alpha, fit.beta] + ([fit.nu] if dist == "t" else [])
    res = arch_model(r, mean="Zero", vol="GARCH", p=1, q=1, dist=dist, rescale=False).fix(params)
    assert res.conditional_volatility[-1] ** 2 == pytest.approx(fit.last_var, rel=1e-6)
    arch_var = res.forecast(horizon=48, reindex=False).variance.to_numpy()[0]
    steps = np.array(HORIZONS) // 5
    next_var = np.array([fit.next_var])
    ours = garch_horizon_variance(next_var, fit.omega, fit.alpha, fit.beta, steps)[0]
    np.testing.assert_allclose(ours, np.cumsum(arch_var)[steps - 1], rtol=1e-6)


def test_garch_baseline_filters_like_arch_between_refits(eurusd_1m: pd.DataFrame) -> None:
    bars = _five(eurusd_1m)
    train, cut = _split(bars, 14)
    times = select_decision_times(bars, cut, bars.index[-1], stride=12)[:30]
    bl = GarchBaseline(window=1200, refit_every=10, dist="t").fit(train)
    f = bl.forecast(bars, times, HORIZONS)
    assert f.kind == "student_t" and len(bl.fits_) == 3
    refit_time, fit = bl.fits_[0]
    assert refit_time == times[0]
    rs = five_minute_returns(bars)
    k = rs.known_at(times)
    params = [fit.omega, fit.alpha, fit.beta, fit.nu]
    steps = np.array(HORIZONS) // 5
    for i in (0, 4, 9):  # the refit itself and later times filtered with the same parameters
        series = rs.returns[k[0] - 1200 : k[i]]
        res = arch_model(series, mean="Zero", vol="GARCH", dist="t", rescale=False).fix(params)
        arch_var = res.forecast(horizon=48, reindex=False).variance.to_numpy()[0]
        np.testing.assert_allclose(f.std()[i] ** 2, np.cumsum(arch_var)[steps - 1], rtol=1e-6)


# --------------------------------------------------------------------------- wiring and errors


def test_build_baselines_from_the_default_config(default_config_path: Path) -> None:
    cfg = load_sssd_config(default_config_path).evaluation
    built = build_baselines(cfg)
    assert [b.name for b in built] == list(cfg.baselines)
    garch = built[-1]
    assert isinstance(garch, GarchBaseline)
    assert (garch.window, garch.refit_every, garch.dist) == (
        cfg.garch_window,
        cfg.garch_refit_every,
        cfg.garch_dist,
    )
    assert build_baselines(EvaluationConfig(baselines=("ewma",)))[0].name == "ewma"


def test_errors(synth_1m: pd.DataFrame) -> None:
    bars = _five(synth_1m)
    times = select_decision_times(bars, bars.index[100], bars.index[200], 12)
    with pytest.raises(RuntimeError, match="call fit"):
        EwmaVolBaseline().forecast(bars, times, HORIZONS)
    with pytest.raises(DataError, match="training range"):
        EwmaVolBaseline().fit(bars.iloc[:100])
    with pytest.raises(ValueError, match="multiples of 5"):
        RollingVolBaseline(10).fit(bars).forecast(bars, times, (7,))
    with pytest.raises(ValueError, match="dist"):
        GarchBaseline(dist="skewt")
