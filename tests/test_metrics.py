"""Metrics and the forecast container against closed forms, scoringrules and calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scoringrules as sr
from scipy import stats

from forex_diffusion.evaluation import metrics as M
from forex_diffusion.features.targets import log_return_to_pips, log_return_to_price_change
from forex_diffusion.models.distribution import ForecastDistribution

LEVELS = (0.5, 0.8, 0.9, 0.95)


def _times(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2021-03-01 00:05", periods=n, freq="5min", tz="UTC")


def _brute_fair_crps(x: np.ndarray, y: float) -> float:
    m = x.size
    return float(np.abs(x - y).mean() - np.abs(x[:, None] - x[None, :]).sum() / (2 * m * (m - 1)))


# --------------------------------------------------------------------------- CRPS


def test_gaussian_crps_matches_scoringrules() -> None:
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(50, 4))
    sigma = rng.uniform(0.1, 3.0, size=(50, 4))
    y = rng.normal(size=(50, 4)) * 2
    np.testing.assert_allclose(
        M.crps_gaussian(mu, sigma, y), sr.crps_normal(y, mu, sigma), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("m", [2, 3, 17, 100])
def test_fair_crps_matches_scoringrules_and_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    x = rng.standard_t(4, size=(30, 3, m))
    x[0, 0, :] = np.round(x[0, 0, :])  # ties
    y = rng.normal(size=(30, 3))
    ours = M.crps_ensemble_fair(x, y)
    np.testing.assert_allclose(
        ours, sr.crps_ensemble(y, x, estimator="fair"), rtol=1e-10, atol=1e-12
    )
    for i, j in [(0, 0), (5, 2), (29, 1)]:
        assert ours[i, j] == pytest.approx(_brute_fair_crps(x[i, j], y[i, j]), rel=1e-10)


def test_fair_crps_of_many_samples_converges_to_gaussian_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu = np.array([0.0, 1.0, -2.0, 0.5])
    sigma = np.array([1.0, 0.3, 2.5, 1e-4])
    y = np.array([0.3, 2.0, -2.1, 0.5002])
    x = mu[:, None] + sigma[:, None] * rng.standard_normal((4, 200_000))
    np.testing.assert_allclose(M.crps_ensemble_fair(x, y), M.crps_gaussian(mu, sigma, y), rtol=5e-3)


def test_fair_crps_is_unbiased_where_the_plain_estimator_is_not() -> None:
    # averaged over many small ensembles the fair score equals the closed form
    rng = np.random.default_rng(2)
    y = rng.standard_normal(40_000)
    x = rng.standard_normal((40_000, 5))
    fair = M.crps_ensemble_fair(x, y).mean()
    exact = M.crps_gaussian(0.0, 1.0, y).mean()
    plain = sr.crps_ensemble(y, x, estimator="nrg").mean()
    assert fair == pytest.approx(exact, rel=0.01)
    assert plain > exact * 1.05  # the energy-form estimator is biased upwards for m = 5


def test_crps_nan_propagation_and_validation() -> None:
    x = np.ones((2, 4))
    x[1, 2] = np.nan
    out = M.crps_ensemble_fair(x, np.array([1.0, 1.0]))
    assert out[0] == 0.0 and np.isnan(out[1])
    assert np.isnan(M.crps_ensemble_fair(np.ones((1, 3)), np.array([np.nan])))[0]
    with pytest.raises(ValueError, match="at least 2"):
        M.crps_ensemble_fair(np.ones((2, 1)), np.ones(2))
    with pytest.raises(ValueError, match="members"):
        M.crps_ensemble_fair(np.ones((2, 3)), np.ones(3))


def test_crps_skill() -> None:
    assert M.crps_skill(np.array([1.0, 1.0]), np.array([2.0, 2.0])) == pytest.approx(0.5)
    assert M.crps_skill(np.array([3.0, np.nan]), np.array([2.0, 100.0])) == pytest.approx(-0.5)
    assert np.isnan(M.crps_skill(np.array([np.nan]), np.array([1.0])))


# --------------------------------------------------------------------------- quantiles


def test_pinball_and_weighted_quantile_loss_by_hand() -> None:
    q = np.array([[1.0, 1.0], [2.0, 2.0]])  # levels 0.1 and 0.9 for two observations
    y = np.array([0.0, 3.0])
    levels = np.array([0.1, 0.9])
    loss = M.pinball_loss(q, y, levels)
    np.testing.assert_allclose(loss, [[0.9 * 1, 0.1 * 2], [0.1 * 2, 0.9 * 1]])
    # wQL_q = 2 Σ loss / Σ|y| = 2 * 1.1 / 3 for both levels
    assert M.weighted_quantile_loss(q, y, levels) == pytest.approx(2 * 1.1 / 3)


def test_dense_quantile_loss_approximates_crps() -> None:
    rng = np.random.default_rng(3)
    y = rng.standard_normal(5000)
    levels = np.linspace(0.005, 0.995, 199)
    quants = stats.norm.ppf(levels)[:, None] * np.ones((1, y.size))
    qs = 2 * M.pinball_loss(quants, y, levels).mean()
    assert qs == pytest.approx(M.crps_gaussian(0.0, 1.0, y).mean(), rel=0.02)


def test_interval_coverage_and_hit_rates_skip_nan() -> None:
    y = np.array([0.0, 1.0, 5.0, np.nan])
    assert M.interval_coverage(np.full(4, -1.0), np.full(4, 1.0), y) == pytest.approx(2 / 3)
    rates = M.quantile_hit_rates(np.array([[0.5] * 4, [2.0] * 4]), y)
    np.testing.assert_allclose(rates, [1 / 3, 2 / 3])


# --------------------------------------------------------------------------- calibration


def _binomial_bounds(n: int, p: float, alpha: float = 1e-4) -> tuple[float, float]:
    lo, hi = stats.binom.interval(1 - alpha, n, p)
    return lo / n, hi / n


@pytest.mark.parametrize("kind", ["gaussian", "samples"])
def test_calibrated_forecaster_has_nominal_coverage_and_flat_pit(kind: str) -> None:
    rng = np.random.default_rng(4)
    n, h = 4000, 2
    mu = rng.normal(0, 1e-4, size=(n, h))
    sigma = rng.uniform(2e-4, 1e-3, size=(n, h))
    y = mu + sigma * rng.standard_normal((n, h))
    if kind == "gaussian":
        f = ForecastDistribution.gaussian("cal", _times(n), (5, 60), mu, sigma)
    else:
        samples = mu[..., None] + sigma[..., None] * rng.standard_normal((n, h, 199))
        f = ForecastDistribution.from_samples("cal", _times(n), (5, 60), samples)
    for level in LEVELS:
        lo, hi = f.interval(level)
        cov = M.interval_coverage(lo, hi, y)
        # samples: an order-statistic interval of S=199 members has coverage slightly off nominal
        b_lo, b_hi = _binomial_bounds(n * h, level)
        assert b_lo - 0.005 <= cov <= b_hi + 0.005, (level, cov)
    counts = M.pit_histogram(f.cdf(y), bins=10)
    assert counts.sum() == n * h
    assert M.pit_uniformity_pvalue(counts) > 1e-3
    rates = M.quantile_hit_rates(f.quantile(np.array([0.1, 0.5, 0.9])), y)
    np.testing.assert_allclose(rates, [0.1, 0.5, 0.9], atol=0.02)


def test_overconfident_forecaster_is_caught() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    y = rng.standard_normal((n, 1))
    f = ForecastDistribution.gaussian(
        "narrow", _times(n), (5,), np.zeros((n, 1)), np.full((n, 1), 0.6)
    )
    lo, hi = f.interval(0.9)
    assert M.interval_coverage(lo, hi, y) < _binomial_bounds(n, 0.9)[0]
    assert M.pit_uniformity_pvalue(M.pit_histogram(f.cdf(y))) < 1e-6


# --------------------------------------------------------------------------- point / direction


def test_mae_rmse_and_directional_accuracy() -> None:
    assert M.mae(np.array([1.0, 2.0, np.nan]), np.array([0.0, 0.0, 1.0])) == pytest.approx(1.5)
    assert M.rmse(np.array([3.0, 0.0]), np.array([0.0, 4.0])) == pytest.approx(np.sqrt(12.5))
    pred = np.array([1.0, -1.0, 1.0, 0.0, 1.0, np.nan])
    actual = np.array([2.0, 1.0, 0.0, 3.0, 0.5, 1.0])
    da = M.directional_accuracy(pred, actual)
    # counted: (1,2) hit, (-1,1) miss, (1,0.5) hit; (1,0) outcome flat; (0,3) forecast flat
    assert (da.accuracy, da.n, da.n_predicted_flat) == (pytest.approx(2 / 3), 3, 1)
    assert np.isnan(M.directional_accuracy(np.zeros(3), np.ones(3)).accuracy)


# --------------------------------------------------------------------------- the container


def test_gaussian_distribution_methods() -> None:
    n = 3
    mu = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.0]])
    sd = np.array([[1.0, 2.0], [0.5, 1.0], [1.0, 3.0]])
    f = ForecastDistribution.gaussian("g", _times(n), (5, 15), mu, sd)
    np.testing.assert_allclose(f.quantile(0.9), stats.norm.ppf(0.9, mu, sd))
    q = f.quantile([0.05, 0.5])
    assert q.shape == (2, n, 2)
    np.testing.assert_allclose(q[1], mu)
    lo, hi = f.interval(0.9)
    np.testing.assert_allclose(lo, stats.norm.ppf(0.05, mu, sd))
    np.testing.assert_allclose(hi, stats.norm.ppf(0.95, mu, sd))
    y = mu + sd
    np.testing.assert_allclose(f.cdf(y), stats.norm.cdf(1.0))
    np.testing.assert_allclose(f.crps(y), sr.crps_normal(y, mu, sd))
    np.testing.assert_array_equal(f.mean(), mu)
    np.testing.assert_array_equal(f.std(), sd)
    sub = f.select(np.array([True, False, True]))
    assert sub.shape == (2, 2) and sub.times[1] == f.times[2]


def test_sample_distribution_methods() -> None:
    rng = np.random.default_rng(6)
    s = rng.normal(size=(4, 2, 50))
    f = ForecastDistribution.from_samples("s", _times(4), (5, 15), s)
    np.testing.assert_allclose(f.mean(), s.mean(axis=2))
    np.testing.assert_allclose(f.std(), s.std(axis=2, ddof=1))
    np.testing.assert_allclose(f.quantile(0.25), np.quantile(s, 0.25, axis=2, method="weibull"))
    np.testing.assert_allclose(f.crps(s[..., 0]), sr.crps_ensemble(s[..., 0], s, estimator="fair"))
    # y far below every sample -> PIT near 0; far above -> near 1 (Gaussian tails)
    assert f.cdf(np.full((4, 2), -1e9))[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert f.cdf(np.full((4, 2), 1e9))[0, 0] == pytest.approx(1.0, abs=1e-12)
    y = np.full((4, 2), np.nan)
    assert np.isnan(f.cdf(y)).all()


def test_distribution_validation() -> None:
    t = _times(2)
    with pytest.raises(ValueError, match="shape"):
        ForecastDistribution.gaussian("g", t, (5,), np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="positive"):
        ForecastDistribution.gaussian("g", t, (5,), np.zeros((2, 1)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="samples"):
        ForecastDistribution.from_samples("s", t, (5,), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="tz-aware"):
        ForecastDistribution.gaussian(
            "g",
            pd.date_range("2021-01-01", periods=2, freq="5min"),
            (5,),
            np.zeros((2, 1)),
            np.ones((2, 1)),
        )
    f = ForecastDistribution.gaussian("g", t, (5,), np.zeros((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="strictly between"):
        f.quantile(1.0)
    with pytest.raises(ValueError, match="strictly between"):
        f.interval(0.0)


def test_price_change_conversion() -> None:
    r = np.log(np.array([[1.1001 / 1.1, 1.0998 / 1.1]]))
    pips = log_return_to_pips(r, np.array([1.1])[:, None], pip_size=1e-4)
    np.testing.assert_allclose(pips, [[1.0, -2.0]], rtol=1e-9)
    # quantiles (Q, N, H) convert with last_close per N after moving Q last
    q = np.stack([r, r])  # (2, 1, 2)
    moved = log_return_to_price_change(np.moveaxis(q, 0, -1), np.array([1.1])[:, None, None])
    assert moved.shape == (1, 2, 2)
    np.testing.assert_allclose(moved[0, 0], [1e-4, 1e-4], rtol=1e-7)
