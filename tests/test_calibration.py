"""Quantile recalibration and adaptive conformal intervals against forecasters of known error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from forex_diffusion.calibration import AdaptiveConformal, QuantileRecalibrator, pit_values
from forex_diffusion.forecast import sample_quantile

COVERAGES = (0.5, 0.8, 0.9, 0.95)


def _narrow_forecaster(rng: np.random.Generator, n: int, s: int, width: float):
    """Outcomes y ~ N(0, σ²) with varying σ; forecasts N(0, (width·σ)²) as ``s`` samples."""
    sigma = np.exp(rng.normal(0, 0.5, n))
    y = rng.normal(0, sigma)
    samples = rng.normal(0, width * sigma[:, None], (n, s))
    return y, samples


def _coverage(samples: np.ndarray, y: np.ndarray, c: float) -> float:
    lo, hi = sample_quantile(samples, np.array([(1 - c) / 2, (1 + c) / 2])).T
    return float(np.mean((y >= lo) & (y <= hi)))


@pytest.mark.parametrize("width", [0.6, 1.5])
def test_recalibrated_coverage_is_nominal_on_fresh_data(width: float) -> None:
    rng = np.random.default_rng(0)
    y_cal, s_cal = _narrow_forecaster(rng, 6000, 100, width)
    cal = QuantileRecalibrator.fit({60: pit_values(s_cal, y_cal)})
    y, s = _narrow_forecaster(rng, 8000, 100, width)
    raw = {c: _coverage(s, y, c) for c in COVERAGES}
    fixed = cal.transform_samples(60, s)
    for c in COVERAGES:
        se = np.sqrt(c * (1 - c) / len(y))
        got = _coverage(fixed, y, c)
        assert abs(got - c) < 4 * se + 0.005, (c, raw[c], got)
        assert abs(raw[c] - c) > 10 * se  # the raw forecaster really was miscalibrated
    # the calibrated PIT is flat: no decile bin more than 1.5 points from 10 %
    hist = np.histogram(pit_values(fixed, y), bins=10, range=(0, 1))[0] / len(y)
    assert np.abs(hist - 0.1).max() < 0.015, hist


def test_calibration_keeps_a_calibrated_forecaster_calibrated() -> None:
    rng = np.random.default_rng(1)
    y_cal, s_cal = _narrow_forecaster(rng, 6000, 100, 1.0)
    cal = QuantileRecalibrator.fit({5: pit_values(s_cal, y_cal)})
    levels = np.linspace(0.01, 0.99, 99)
    assert np.abs(cal.model_levels(5, levels) - levels).max() < 0.03


def test_calibration_never_reorders_quantiles_or_samples() -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        pit = rng.beta(rng.uniform(0.2, 5), rng.uniform(0.2, 5), rng.integers(2, 500))
        cal = QuantileRecalibrator.fit({15: pit}, shrink=rng.uniform(0, 0.2))
        u = cal.model_levels(15, np.linspace(0, 1, 1001))
        assert np.all(np.diff(u) >= 0) and u[0] >= 0 and u[-1] <= 1
        x = rng.standard_t(3, (7, 64))
        out = cal.transform_samples(15, x)
        assert np.array_equal(
            np.argsort(x, axis=1, kind="stable"), np.argsort(out, axis=1, kind="stable")
        ) or np.all(
            np.diff(np.take_along_axis(out, np.argsort(x, axis=1), axis=1), axis=1) >= -1e-15
        )


def test_round_trip_and_bad_maps() -> None:
    rng = np.random.default_rng(3)
    cal = QuantileRecalibrator.fit(
        {5: rng.uniform(size=300), 60: rng.beta(2, 2, 300)}, fitted_on={"n": 300}
    )
    back = QuantileRecalibrator.from_dict(cal.to_dict())
    x = rng.normal(size=(4, 50))
    for h in (5, 60):
        np.testing.assert_array_equal(back.transform_samples(h, x), cal.transform_samples(h, x))
    assert back.fitted_on == {"n": 300}
    with pytest.raises(KeyError, match="horizon 240"):
        cal.model_levels(240, [0.5])
    bad = cal.to_dict()
    bad["maps"]["5"]["u"] = bad["maps"]["5"]["u"][::-1]
    with pytest.raises(ValueError, match="not monotone"):
        QuantileRecalibrator.from_dict(bad)
    with pytest.raises(ValueError, match="format"):
        QuantileRecalibrator.from_dict({**cal.to_dict(), "format_version": 99})


def test_pit_of_true_samples_is_uniform() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=20000)
    pit = pit_values(rng.normal(size=(20000, 50)), y)
    assert stats.kstest(pit, "uniform").pvalue > 0.01


def test_adaptive_conformal_tracks_a_volatility_break() -> None:
    """Volatility doubles halfway: ACI's long-run coverage stays within 1 point, a fixed map's not."""
    rng = np.random.default_rng(5)
    n, c = 8000, 0.9
    sigma = np.where(np.arange(n) < n // 2, 1.0, 2.0)
    y = rng.normal(0, sigma)
    # the forecaster was calibrated for the first regime and never learns about the break
    fixed_q = stats.norm(0, 1.0).ppf
    quantiles = [fixed_q] * n
    aci = AdaptiveConformal(coverages=(c,), gamma=0.01)
    _, _, covered = aci.run(60, c, quantiles, y, delay=4)
    fixed_lo, fixed_hi = fixed_q((1 - c) / 2), fixed_q((1 + c) / 2)
    fixed_cov = float(np.mean((y >= fixed_lo) & (y <= fixed_hi)))
    assert abs(covered.mean() - c) < 0.01, covered.mean()
    assert abs(fixed_cov - c) > 0.05, fixed_cov
    # it adapts where it matters: the second half alone is also near nominal
    assert abs(covered[n // 2 :].mean() - c) < 0.02


def test_adaptive_conformal_validates_and_handles_extreme_levels() -> None:
    with pytest.raises(ValueError, match="gamma"):
        AdaptiveConformal(gamma=0)
    with pytest.raises(ValueError, match="coverage"):
        AdaptiveConformal(coverages=(1.0,))
    aci = AdaptiveConformal(coverages=(0.9,), gamma=0.5)
    assert AdaptiveConformal(coverages=(0.9,), gamma=0.5).interval(5, 0.9, stats.norm().ppf)[0] < 0
    q = stats.norm().ppf
    steps = 0
    while aci.level(5, 0.9) < 1 and steps < 100:  # covered every time: α grows by γ·0.1 a step
        lo, hi = aci.interval(5, 0.9, q)
        assert aci.update(5, 0.9, lo, hi, 0.0)
        steps += 1
    assert steps == 18
    assert aci.level(5, 0.9) > 1 and aci.interval(5, 0.9, q) == (np.inf, -np.inf)


def _break_series(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes whose volatility doubles halfway, a forecaster that always says N(0, 1) (S = 100
    samples), and hourly decision times."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0, np.where(np.arange(n) < n // 2, 1.0, 2.0))
    x = rng.normal(size=(n, 100))
    times = np.arange(n, dtype=np.int64) * 3_600_000_000_000
    return x, y, times


def test_adaptive_conformal_samples_cover_every_level_through_a_break() -> None:
    """The issued distributions (not only one interval) reach nominal coverage at every adapted
    level, in the long run and after the break, where the fixed forecaster is far off; every
    issued sample set keeps the order of the forecaster's samples."""
    from forex_diffusion.calibration.conformal import adaptive_conformal_samples
    from forex_diffusion.forecast import sample_quantile

    x, y, times = _break_series(6000, 6)
    aci = AdaptiveConformal(gamma=0.01)
    out, used = adaptive_conformal_samples(x, y, times, 60, aci)
    assert out.shape == x.shape and used.shape == (6000, 4)
    by_rank = np.take_along_axis(out, np.argsort(x, axis=1), axis=1)
    assert np.all(np.diff(by_rank, axis=1) >= 0)  # ranks kept (ties where the map is flat)
    half = slice(3000, None)
    for c in aci.coverages:
        lo, hi = sample_quantile(out, [(1 - c) / 2, (1 + c) / 2]).T
        inside = (y >= lo) & (y <= hi)
        assert abs(inside.mean() - c) < 0.01, (c, inside.mean())
        assert abs(inside[half].mean() - c) < 0.02, (c, inside[half].mean())
        flo, fhi = sample_quantile(x, [(1 - c) / 2, (1 + c) / 2]).T
        assert abs(np.mean((y >= flo) & (y <= fhi)) - c) > 0.05
    # the levels widened after the break: α of 90 % fell well below its nominal 0.1
    assert used[-1, aci.coverages.index(0.9)] < 0.05


def test_adaptive_conformal_samples_never_use_an_outcome_before_it_is_known() -> None:
    """Forecast i depends only on outcomes with t_j + h ≤ t_i: changing every later outcome, or
    the outcomes of forecasts still open at t_i, leaves forecasts 0 … i unchanged."""
    from forex_diffusion.calibration.conformal import adaptive_conformal_samples

    x, y, times = _break_series(400, 7)
    h = 240  # four hourly decision times open at once
    base, used = adaptive_conformal_samples(x, y, times, h, AdaptiveConformal(gamma=0.05))
    i = 250
    changed = y.copy()
    changed[i - 3 :] *= 5.0  # forecasts i−3 … i−1 are still open at t_i (t + 240 min > t_i)
    again, used_again = adaptive_conformal_samples(
        x, changed, times, h, AdaptiveConformal(gamma=0.05)
    )
    np.testing.assert_array_equal(again[: i + 1], base[: i + 1])
    np.testing.assert_array_equal(used_again[: i + 1], used[: i + 1])
    assert not np.array_equal(again[i + 1 :], base[i + 1 :])  # they do count once known
    # an outcome known exactly at t_i (t_j + h = t_i) is used for forecast i
    earlier = y.copy()
    earlier[i - 4] *= 50.0
    third, _ = adaptive_conformal_samples(x, earlier, times, h, AdaptiveConformal(gamma=0.05))
    np.testing.assert_array_equal(third[:i], base[:i])
    assert not np.array_equal(third[i], base[i])


def test_online_conformal_issues_several_horizons_as_one_at_a_time() -> None:
    """The live service issues all horizons of a forecast in one pass: the same samples and
    kept intervals as issuing each horizon alone, with levels that differ per horizon."""
    from forex_diffusion.calibration.conformal import OnlineConformal

    rng = np.random.default_rng(3)
    horizons = [5, 15, 60, 240]
    together = OnlineConformal(AdaptiveConformal(gamma=0.2))
    alone = OnlineConformal(AdaptiveConformal(gamma=0.2))
    for k, h in enumerate(horizons):  # distinct running levels per horizon
        for online in (together, alone):
            online.aci.alpha[(h, 0.9)] = 0.02 + 0.05 * k
            online.aci.alpha[(h, 0.5)] = 0.7 - 0.1 * k
    x = rng.standard_t(4, (4, 100))
    out = together.issue(10, horizons, x)
    for j, h in enumerate(horizons):
        np.testing.assert_allclose(out[j], alone.issue(10, [h], x[j : j + 1])[0])
        np.testing.assert_allclose(together.issued[(10, h)], alone.issued[(10, h)])
    assert not np.allclose(out[0], out[3] - x[3] + x[0])  # the rows were adapted differently
    with pytest.raises(ValueError, match="samples"):
        together.issue(20, horizons, x[:3])


def test_central_level_map_is_monotone_and_issues_the_adapted_intervals() -> None:
    from forex_diffusion.calibration.conformal import central_level_map

    tau, u = central_level_map({0.9: 0.04, 0.5: 0.6})
    np.testing.assert_allclose(tau, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1])
    np.testing.assert_allclose(u, [0, 0.02, 0.3, 0.5, 0.7, 0.98, 1])
    # crossing levels (the 50 % level wider than the 90 %) and levels outside [0, 1]
    tau, u = central_level_map({0.9: 0.5, 0.5: 0.2, 0.8: -0.3})
    assert np.all(np.diff(u) >= 0) and u[0] == 0 and u[-1] == 1
    tau, u = central_level_map({0.9: 1.4})
    np.testing.assert_allclose(u, [0, 0.5, 0.5, 0.5, 1])


def test_adaptive_conformal_by_session_covers_each_session() -> None:
    """Outcomes three times as volatile in New York hours as the forecaster says, half as
    volatile in Asia: one set of levels covers 90 % overall but not per session; levels per
    session cover each session."""
    from forex_diffusion.calibration.conformal import adaptive_conformal_samples
    from forex_diffusion.forecast import sample_quantile
    from forex_diffusion.sessions import SESSIONS, session_of_ns

    rng = np.random.default_rng(8)
    n = 12_000  # hourly: 500 days
    times = np.arange(n, dtype=np.int64) * 3_600_000_000_000
    session = session_of_ns(times)
    names = [s.name for s in SESSIONS]
    scale = np.select(
        [session == names.index("New York"), session == names.index("Asia")], [3.0, 0.5], 1.0
    )
    y = rng.normal(size=n) * scale
    x = rng.normal(size=(n, 100))
    cover = {}
    for by_session in (False, True):
        out, _ = adaptive_conformal_samples(
            x, y, times, 60, AdaptiveConformal(coverages=(0.9,), gamma=0.02), by_session
        )
        lo, hi = sample_quantile(out, [0.05, 0.95]).T
        inside = (y >= lo) & (y <= hi)
        cover[by_session] = [inside[session == k].mean() for k in range(len(SESSIONS))]
        assert abs(inside.mean() - 0.9) < 0.01
    assert max(abs(c - 0.9) for c in cover[False]) > 0.05
    assert max(abs(c - 0.9) for c in cover[True]) < 0.015, cover[True]


def test_adaptive_conformal_by_phase_covers_the_full_hour() -> None:
    """Every 5m bar for 100 days; outcomes 1.4 times as volatile as the forecaster says when t
    is on the full hour, 0.9 times otherwise: levels per session cover the hour but miss the
    full hour (about 73 %), levels per session and phase of the hour cover every cell."""
    from forex_diffusion.calibration.conformal import adaptive_conformal_samples
    from forex_diffusion.forecast import sample_quantile
    from forex_diffusion.sessions import SESSIONS, phase_of_ns, session_of_ns

    rng = np.random.default_rng(9)
    n = 100 * 288
    times = np.arange(n, dtype=np.int64) * 300_000_000_000
    phase, session = phase_of_ns(times), session_of_ns(times)
    y = rng.normal(size=n) * np.where(phase == 0, 1.4, 0.9)
    x = rng.normal(size=(n, 100))
    cover = {}
    for by_phase in (False, True):
        out, _ = adaptive_conformal_samples(
            x, y, times, 5, AdaptiveConformal(coverages=(0.9,), gamma=0.02), True, by_phase
        )
        lo, hi = sample_quantile(out, [0.05, 0.95]).T
        inside = (y >= lo) & (y <= hi)
        cover[by_phase] = {
            (k, p): inside[(session == k) & (phase == p)].mean()
            for k in range(len(SESSIONS))
            for p in (0, 1, 6)
        }
        assert abs(inside.mean() - 0.9) < 0.01
    assert all(cover[False][(k, 0)] < 0.8 for k in range(len(SESSIONS))), cover[False]
    assert all(cover[False][(k, 1)] > 0.9 for k in range(len(SESSIONS))), cover[False]
    worst = max(abs(c - 0.9) for c in cover[True].values())
    assert worst < 0.03, cover[True]


def test_overlapping_outcomes_weigh_by_the_share_of_the_window_they_add() -> None:
    """Closed form of the overlap weight: 240-min forecasts every c minutes, all missed, move α
    by γ·α_miss·(1 + (n − 1)·min(1, c/240)); a repeated decision time adds nothing."""
    from forex_diffusion.calibration.conformal import OnlineConformal
    from forex_diffusion.timeframe_units import NS_PER_MIN

    gamma, h, span = 0.01, 240, 2400
    x = np.zeros((1, 10))
    for cadence in (5, 60, 240, 480):
        online = OnlineConformal(AdaptiveConformal(coverages=(0.9,), gamma=gamma))
        times = [t * NS_PER_MIN for t in range(0, span, cadence)]
        for t in times:
            online.issue(t, [h], x)
        for t in times:
            online.resolve(t, h, 1e9)
        weight = 1 + (len(times) - 1) * min(1.0, cadence / h)
        assert online.aci.level(h, 0.9) == pytest.approx(0.1 - gamma * 0.9 * weight)
    aci = AdaptiveConformal(coverages=(0.9,), gamma=gamma)
    assert aci.overlap_weight(h, 0) == 1.0
    assert aci.overlap_weight(h, 60 * NS_PER_MIN) == pytest.approx(0.25)
    assert aci.overlap_weight(h, 60 * NS_PER_MIN) == 0.0  # the same decision time again
    assert aci.overlap_weight(h, 0) == 0.0  # an earlier one: nothing new either
    assert aci.overlap_weight(h, 120 * NS_PER_MIN) == pytest.approx(0.25)  # Δ from the latest


def test_adaptive_levels_are_as_steady_at_every_bar_as_every_four_hours() -> None:
    """240-min targets of a random walk, forecast exactly (N(0, 240 min)) every 5 min or every
    4 hours: the outcomes of forecasts 5 min apart share 98 % of their path, so unweighted they
    would move the levels 48 times per window and swing them far from nominal; weighted, the
    levels stay as close to nominal at every bar as at 4-hour steps, and coverage is nominal."""
    from forex_diffusion.calibration.conformal import adaptive_conformal_samples
    from forex_diffusion.forecast import sample_quantile
    from forex_diffusion.timeframe_units import NS_PER_MIN

    rng = np.random.default_rng(11)
    h, days = 240, 150
    path = np.concatenate([[0.0], np.cumsum(rng.normal(size=days * 1440))])  # 1-min steps
    x = stats.norm(0, np.sqrt(h)).ppf((np.arange(100) + 0.5) / 100)
    spread, cover = {}, {}
    for cadence in (5, 240):
        t_min = np.arange(0, days * 1440 - h, cadence)
        y = path[t_min + h] - path[t_min]
        out, used = adaptive_conformal_samples(
            np.tile(x, (len(t_min), 1)),
            y,
            t_min.astype(np.int64) * NS_PER_MIN,
            h,
            AdaptiveConformal(coverages=(0.9,), gamma=0.02),
        )
        spread[cadence] = float(np.sqrt(np.mean((used[:, 0] - 0.1) ** 2)))
        lo, hi = sample_quantile(out, [0.05, 0.95]).T
        cover[cadence] = float(np.mean((y >= lo) & (y <= hi)))
    assert spread[5] < 1.5 * spread[240], spread
    assert abs(cover[5] - 0.9) < 0.02 and abs(cover[240] - 0.9) < 0.03, cover
