"""The GARCH(1,1)-t baseline is scored as the Student-t it fits, and its refit failures count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scoringrules as sr
from scipy import integrate, stats

from forex_diffusion.data.candles import validate_candles
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.evaluation.metrics import crps_gaussian, crps_student_t
from forex_diffusion.evaluation.targets import select_decision_times
from forex_diffusion.models import baselines as bl_mod
from forex_diffusion.models.baselines import GarchBaseline
from forex_diffusion.models.distribution import ForecastDistribution

HORIZONS = (5, 15, 60, 240)


def _crps_by_integration(mu: float, sigma: float, nu: float, y: float) -> float:
    """CRPS = ∫ (F(x) − 1{x ≥ y})² dx, integrated numerically (independent of any closed form)."""
    f = stats.t(df=nu, loc=mu, scale=sigma).cdf
    left = integrate.quad(lambda x: f(x) ** 2, -np.inf, y, limit=200)[0]
    right = integrate.quad(lambda x: (1 - f(x)) ** 2, y, np.inf, limit=200)[0]
    return left + right


def test_student_t_crps_matches_the_integral_definition() -> None:
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(0, 1, 12), rng.uniform(0.1, 3, 12)
    nu, y = rng.uniform(1.5, 40, 12), rng.standard_t(4, 12) * 2
    ours = crps_student_t(mu, sigma, nu, y)
    ref = [_crps_by_integration(*args) for args in zip(mu, sigma, nu, y, strict=True)]
    np.testing.assert_allclose(ours, ref, rtol=1e-6)
    # ν → ∞ is the Gaussian
    np.testing.assert_allclose(
        crps_student_t(mu, sigma, np.full(12, 1e7), y), crps_gaussian(mu, sigma, y), rtol=1e-5
    )
    with pytest.raises(ValueError, match="ν > 1"):
        crps_student_t(0.0, 1.0, 1.0, 0.3)


def test_student_t_forecast_quantiles_std_and_pit() -> None:
    times = pd.date_range("2021-03-01", periods=3, freq="h", tz="UTC")
    std = np.array([[1.0, 2.0], [0.5, 1.0], [3.0, 1.5]])
    df = np.array([[4.0, 4.0], [10.0, 10.0], [3.0, 3.0]])
    f = ForecastDistribution.student_t("g", times, (5, 60), np.zeros((3, 2)), std, df)
    assert f.kind == "student_t"
    np.testing.assert_allclose(f.std(), std)
    scale = std * np.sqrt((df - 2) / df)
    np.testing.assert_allclose(f.quantile(0.95), stats.t.ppf(0.95, df) * scale)
    np.testing.assert_allclose(f.cdf(np.ones((3, 2))), stats.t.cdf(1 / scale, df))
    lo, hi = f.interval(0.9)
    np.testing.assert_allclose(hi, -lo)
    y = np.full((3, 2), 0.7)
    np.testing.assert_allclose(f.crps(y), sr.crps_t(y, df, 0.0, scale), rtol=1e-10)
    with pytest.raises(ValueError, match="df > 2"):
        ForecastDistribution.student_t("g", times, (5, 60), np.zeros((3, 2)), std, df - 2)


@pytest.fixture(scope="module")
def bars(synth_month: pd.DataFrame) -> pd.DataFrame:
    return resample_ohlc(validate_candles(synth_month), "5m")


def test_garch_t_baseline_is_scored_with_its_t(bars: pd.DataFrame) -> None:
    cut = bars.index[0] + pd.Timedelta(days=14)
    train = bars[bars.index + pd.Timedelta(minutes=5) <= cut]
    times = select_decision_times(bars, cut, bars.index[-1], stride=12)[:40]
    g = GarchBaseline(window=1200, refit_every=20, dist="t").fit(train)
    f = g.forecast(bars, times, HORIZONS)
    assert f.kind == "student_t"
    nu = g.fits_[-1][1].nu
    assert nu is not None and 2 < nu < 100
    y = np.full(f.shape, 1e-4)
    t = f.forecast
    np.testing.assert_allclose(f.crps(y), sr.crps_t(y, t.df, t.loc, t.scale), rtol=1e-10)
    # not the Gaussian of the same variance: scoring it so was the defect
    assert not np.allclose(f.crps(y), crps_gaussian(0.0, f.std(), y), rtol=1e-3)
    normal = GarchBaseline(window=1200, refit_every=20, dist="normal").fit(train)
    assert normal.forecast(bars, times, HORIZONS).kind == "gaussian"


def test_garch_refit_failures_are_counted(
    bars: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut = bars.index[0] + pd.Timedelta(days=14)
    train = bars[bars.index + pd.Timedelta(minutes=5) <= cut]
    times = select_decision_times(bars, cut, bars.index[-1], stride=12)[:60]
    g = GarchBaseline(window=1200, refit_every=10, dist="t").fit(train)
    real_fit = bl_mod.fit_garch
    calls = {"n": 0}

    def flaky(returns: np.ndarray, dist: str = "t") -> bl_mod.GarchFit:
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise np.linalg.LinAlgError("singular")
        fit = real_fit(returns, dist)
        if calls["n"] % 3 == 2:
            return bl_mod.GarchFit(**{**fit.__dict__, "converged": False})
        return fit

    monkeypatch.setattr(bl_mod, "fit_garch", flaky)
    g.forecast(bars, times, HORIZONS)
    assert calls["n"] == 6
    assert g.refit_failures_ == 4  # 2 raised, 2 did not converge
    assert len(g.fits_) + g.refit_failures_ == 6
