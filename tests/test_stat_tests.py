"""Pesaran–Timmermann and Diebold–Mariano tests on known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from forex_diffusion.evaluation.metrics import crps_gaussian
from forex_diffusion.evaluation.stat_tests import (
    diebold_mariano,
    newey_west_variance,
    overlap_lag,
    pesaran_timmermann,
)

# --------------------------------------------------------------------------- PT


def test_pt_by_hand() -> None:
    # 10 pairs: actual up 6 times, predicted up 6 times, 8 hits
    actual = np.array([1, 1, 1, 1, 1, 1, -1, -1, -1, -1], dtype=float)
    pred = np.array([1, 1, 1, 1, 1, -1, -1, -1, -1, 1], dtype=float)
    r = pesaran_timmermann(pred, actual)
    n, px, py, hit = 10, 0.6, 0.6, 0.8
    p_star = py * px + (1 - py) * (1 - px)
    v_p = p_star * (1 - p_star) / n
    v_ps = (2 * py - 1) ** 2 * px * (1 - px) / n + (2 * px - 1) ** 2 * py * (1 - py) / n
    v_ps += 4 * py * px * (1 - py) * (1 - px) / n**2
    s = (hit - p_star) / math.sqrt(v_p - v_ps)
    assert (
        r.n == n
        and r.hit_rate == pytest.approx(hit)
        and r.expected_hit_rate == pytest.approx(p_star)
    )
    assert r.statistic == pytest.approx(s)
    assert r.p_value == pytest.approx(stats.norm.sf(s))


def test_pt_is_the_2x2_independence_test_asymptotically() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(5000)
    p = 0.1 * a + rng.standard_normal(5000)
    r = pesaran_timmermann(p, a)
    table = [
        [np.sum((a > 0) & (p > 0)), np.sum((a > 0) & (p < 0))],
        [np.sum((a < 0) & (p > 0)), np.sum((a < 0) & (p < 0))],
    ]
    chi2 = stats.chi2_contingency(table, correction=False)[0]
    assert r.statistic**2 == pytest.approx(chi2, rel=0.01)
    assert r.p_value < 1e-3


def test_pt_skill_and_no_skill() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal(2000)
    assert pesaran_timmermann(a, a).p_value < 1e-50  # perfect foresight
    assert pesaran_timmermann(-a, a).p_value > 0.999  # perfectly wrong: no positive skill
    # independent guesses: p-values roughly uniform, rejection rate near nominal
    pvals = [
        pesaran_timmermann(rng.standard_normal(300), rng.standard_normal(300)).p_value
        for _ in range(300)
    ]
    assert 0.01 <= np.mean(np.array(pvals) < 0.05) <= 0.10


def test_pt_degenerate_cases() -> None:
    a = np.array([1.0, -1.0, 2.0, -3.0])
    const = pesaran_timmermann(np.ones(4), a)  # always "up": no test possible
    assert math.isnan(const.statistic) and math.isnan(const.p_value) and const.n == 4
    zero = pesaran_timmermann(np.zeros(4), a)  # no direction at all (zero-mean forecast)
    assert zero.n == 0 and math.isnan(zero.p_value)
    # zeros and NaN pairs are dropped
    assert pesaran_timmermann(np.array([1.0, np.nan, 1, -1]), np.array([1.0, 1, 0, -1])).n == 2


# --------------------------------------------------------------------------- DM


def test_newey_west_variance() -> None:
    rng = np.random.default_rng(2)
    d = rng.standard_normal(500)
    assert newey_west_variance(d, 0) == pytest.approx(np.var(d))
    e = d - d.mean()
    g1 = (e[1:] @ e[:-1]) / d.size
    g2 = (e[2:] @ e[:-2]) / d.size
    assert newey_west_variance(d, 2) == pytest.approx(
        np.var(d) + 2 * (2 / 3) * g1 + 2 * (1 / 3) * g2
    )
    assert newey_west_variance(d, 2, "uniform") == pytest.approx(np.var(d) + 2 * g1 + 2 * g2)
    with pytest.raises(ValueError, match="kernel"):
        newey_west_variance(d, 2, "parzen")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("horizon", "stride", "lag"),
    [(5, 1, 0), (15, 1, 2), (60, 1, 11), (240, 1, 47), (60, 12, 0), (240, 12, 3)],
)
def test_overlap_lag(horizon: int, stride: int, lag: int) -> None:
    assert overlap_lag(horizon, stride) == lag


def _crps_losses(
    rng: np.random.Generator, n: int, sd_a: float, sd_b: float
) -> tuple[np.ndarray, np.ndarray]:
    y = rng.standard_normal(n)
    return crps_gaussian(0.0, sd_a, y), crps_gaussian(0.0, sd_b, y)


def test_dm_rejects_a_clearly_worse_forecaster() -> None:
    rng = np.random.default_rng(3)
    good, bad = _crps_losses(rng, 500, 1.0, 2.5)
    r = diebold_mariano(bad, good, lag=0)
    assert r.mean_differential > 0 and r.p_value < 1e-6
    assert diebold_mariano(bad, good, lag=0, alternative="greater").p_value < 1e-6
    assert diebold_mariano(bad, good, lag=0, alternative="less").p_value > 0.999
    assert diebold_mariano(good, bad, lag=0, alternative="less").p_value < 1e-6


def test_dm_does_not_reject_identical_or_equally_good_forecasters() -> None:
    rng = np.random.default_rng(4)
    loss = rng.exponential(size=300)
    same = diebold_mariano(loss, loss.copy(), lag=3)
    assert same.statistic == 0.0 and same.p_value == 1.0
    # equally good but different forecasters: mean ±0.3, same spread; the rejection rate is near 5 %
    rejections = 0
    for _ in range(200):
        y = rng.standard_normal(300)
        a = crps_gaussian(0.3, 1.0, y)
        b = crps_gaussian(-0.3, 1.0, y)
        rejections += diebold_mariano(a, b, lag=0).p_value < 0.05
    assert 0.01 <= rejections / 200 <= 0.10


def test_dm_size_with_overlapping_forecasts_needs_the_hac_lag() -> None:
    # MA(h-1) loss differentials, as for h-step forecasts made every step
    rng = np.random.default_rng(5)
    h, n, reps = 8, 400, 300
    rejections = {"bartlett": 0, "uniform": 0, "none": 0}
    for _ in range(reps):
        e = rng.standard_normal(n + h - 1)
        d = np.convolve(e, np.ones(h), mode="valid")
        zero = np.zeros(n)
        rejections["bartlett"] += diebold_mariano(d, zero, lag=h - 1).p_value < 0.05
        rejections["uniform"] += (
            diebold_mariano(d, zero, lag=h - 1, kernel="uniform").p_value < 0.05
        )
        rejections["none"] += diebold_mariano(d, zero, lag=0, hln=False).p_value < 0.05
    rate = {k: v / reps for k, v in rejections.items()}
    assert 0.02 <= rate["uniform"] <= 0.09  # the truncated uniform sum keeps the size
    # Newey-West weights are biased low for MA(h-1): mild over-rejection
    assert rate["bartlett"] <= 0.16
    assert rate["none"] > 0.3  # ignoring the overlap over-rejects badly


def test_dm_hln_factor_and_validation() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.exponential(size=50), rng.exponential(size=50) * 1.2
    raw = diebold_mariano(a, b, lag=2, hln=False)
    hln = diebold_mariano(a, b, lag=2, hln=True)
    n, h = 50, 3
    assert hln.statistic == pytest.approx(
        raw.statistic * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    )
    assert hln.p_value == pytest.approx(2 * stats.t(df=n - 1).sf(abs(hln.statistic)))
    assert raw.p_value == pytest.approx(2 * stats.norm.sf(abs(raw.statistic)))
    b[:10] = np.nan
    assert diebold_mariano(a, b, lag=0).n == 40
    assert math.isnan(diebold_mariano(a[:2], b[:2], lag=0).p_value)
    with pytest.raises(ValueError, match="lag"):
        diebold_mariano(a, b, lag=-1)
    with pytest.raises(ValueError, match="length"):
        diebold_mariano(a, b[:3], lag=0)
    with pytest.raises(ValueError, match="alternative"):
        diebold_mariano(a, a + 1, lag=0, alternative="bigger")  # type: ignore[arg-type]
