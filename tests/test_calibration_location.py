"""The location shrink of the calibration: what it does to a forecast (closed form), that its fit
finds the share of a location that carries signal on forecasters of known skill, that it is
applied before the quantile map, pooled for unseen assets and stored in the checkpoint."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from forex_diffusion.calibration import (
    CellRecalibrator,
    QuantileRecalibrator,
    load_recalibrator,
    pooled_location,
)
from forex_diffusion.calibration.location import (
    GRID,
    LocationShrink,
    relative_crps_curve,
    shrink_location,
)
from forex_diffusion.forecast import crps_ensemble_fair, sample_cdf


def _forecasts(
    n: int, s: int, signal: float, claimed: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes y = signal·a + e (a, e ~ N(0, 1)) and forecasts N(claimed·a, 1) of S samples:
    the forecaster's location is ``claimed/signal`` times too large (CRPS-optimal share kept:
    signal/claimed, shrunk towards zero)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    y = signal * a + rng.standard_normal(n)
    x = claimed * a[:, None] + rng.standard_normal((n, s))
    return x, y


def test_shrinking_moves_every_sample_by_the_same_share_of_the_median() -> None:
    x = np.array([[1.0, 2.0, 3.0, 10.0], [-4.0, -2.0, 0.0, 2.0]])
    out = shrink_location(x, 0.25)
    med = np.array([[2.5], [-1.0]])
    np.testing.assert_allclose(out, x - 0.75 * med)
    np.testing.assert_allclose(np.median(out, axis=-1), 0.25 * med[:, 0])
    np.testing.assert_allclose(out.std(axis=-1), x.std(axis=-1))  # spread unchanged
    assert np.array_equal(shrink_location(x, 1.0), x)
    np.testing.assert_allclose(np.median(shrink_location(x, 0.0), axis=-1), 0.0, atol=1e-12)


def test_the_relative_curve_is_the_crps_along_the_grid_over_the_crps_as_given() -> None:
    x, y = _forecasts(400, 64, 0.3, 1.0, seed=1)
    curve = relative_crps_curve(x, y)
    assert curve.shape == GRID.shape and curve[-1] == pytest.approx(1.0)
    k = GRID[8]
    direct = crps_ensemble_fair(shrink_location(x, k), y).mean() / crps_ensemble_fair(x, y).mean()
    assert curve[8] == pytest.approx(direct, rel=1e-12)
    y_bad = y.copy()
    y_bad[:3] = np.nan  # non-finite outcomes are left out, not propagated
    expected = relative_crps_curve(x[3:], y[3:])
    np.testing.assert_allclose(relative_crps_curve(x, y_bad), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("signal", "claimed", "lo", "hi"),
    [
        (1.0, 1.0, 0.85, 1.0),  # an honest location is kept
        (0.5, 1.0, 0.35, 0.65),  # twice too large: about half kept
        (0.0, 1.0, 0.0, 0.1),  # no signal at all: removed
    ],
)
def test_the_fit_keeps_the_share_of_the_location_that_carries_signal(
    signal: float, claimed: float, lo: float, hi: float
) -> None:
    x, y = _forecasts(4000, 64, signal, claimed, seed=2)
    shrink = LocationShrink.fit({60: x}, {60: y})
    assert lo <= shrink.keep[60] <= hi
    # and it scores better on fresh forecasts of the same forecaster, or equal when kept whole
    x2, y2 = _forecasts(4000, 64, signal, claimed, seed=3)
    shrunk = crps_ensemble_fair(shrink.apply(60, x2), y2).mean()
    assert shrunk <= crps_ensemble_fair(x2, y2).mean() * (1 + 1e-3)
    if signal < claimed:
        assert shrunk < crps_ensemble_fair(x2, y2).mean() * 0.99


def test_pooling_averages_relative_curves_so_each_asset_counts_once() -> None:
    honest_x, honest_y = _forecasts(3000, 64, 1.0, 1.0, seed=4)
    honest = LocationShrink.fit({5: honest_x}, {5: honest_y})
    noisy_x, noisy_y = _forecasts(3000, 64, 0.0, 1.0, seed=5)
    noisy = LocationShrink.fit({5: noisy_x * 100}, {5: noisy_y * 100})  # 100× the CRPS level
    pooled = LocationShrink.pool([honest, noisy])
    np.testing.assert_allclose(pooled.curves[5], (honest.curves[5] + noisy.curves[5]) / 2)
    assert pooled.keep[5] == GRID[int(np.argmin(pooled.curves[5]))]
    assert noisy.keep[5] < pooled.keep[5] < honest.keep[5]
    with pytest.raises(ValueError, match="at least one"):
        LocationShrink.pool([])


def _shrink(keep: dict[int, float]) -> LocationShrink:
    return LocationShrink(keep, {h: np.linspace(1.2, 1.0, GRID.size) for h in keep})


def test_the_shrink_comes_before_the_map_and_round_trips() -> None:
    rng = np.random.default_rng(6)
    pit = {5: rng.uniform(0.2, 0.8, 500), 60: rng.uniform(0, 1, 500)}
    plain = QuantileRecalibrator.fit(pit)
    cal = QuantileRecalibrator.fit(pit, location=_shrink({5: 0.5, 60: 0.0}))
    ns = np.zeros(7, dtype=np.int64)
    for samples in (50, 51):  # the median of an even and an odd number of samples
        x = 1.0 + rng.standard_normal((7, samples))
        for h, k in ((5, 0.5), (60, 0.0)):
            expected = plain.transform_samples(h, shrink_location(x, k))
            np.testing.assert_allclose(cal.transform_at(h, x, ns), expected, rtol=1e-12, atol=1e-15)
    back = load_recalibrator(cal.to_dict())
    assert isinstance(back, QuantileRecalibrator) and back.to_dict() == cal.to_dict()
    assert back.location is not None and back.location.keep == {5: 0.5, 60: 0.0}
    # a map stored before the shrink existed (no "location") loads without one
    assert "location" not in plain.to_dict()
    assert load_recalibrator(plain.to_dict()).location is None
    bad = cal.to_dict()
    bad["location"]["keep"]["5"] = 1.5
    with pytest.raises(ValueError, match="not in"):
        load_recalibrator(bad)
    bad = cal.to_dict()
    bad["location"]["grid"] = [0.0, 1.0]
    with pytest.raises(ValueError, match="another grid"):
        load_recalibrator(bad)


def test_the_session_maps_shift_every_session_by_the_per_horizon_shrink() -> None:
    rng = np.random.default_rng(7)
    hours = rng.integers(0, 24, 2000)
    ns = (np.datetime64("2019-03-04") + hours * np.timedelta64(1, "h")).astype("datetime64[ns]")
    decision_ns = ns.astype(np.int64)
    pit = {5: rng.uniform(0.1, 0.9, 2000)}
    cal = CellRecalibrator.fit(pit, decision_ns, 100, location=_shrink({5: 0.25}))
    assert cal.location is not None and cal.location.keep == {5: 0.25}
    x = 2.0 + rng.standard_normal((2000, 40))
    plain = replace(cal, base=replace(cal.base, location=None))
    np.testing.assert_allclose(
        cal.transform_at(5, x, decision_ns),
        plain.transform_at(5, shrink_location(x, 0.25), decision_ns),
        rtol=1e-12,
        atol=1e-15,  # the shrink is computed after the map: equal up to rounding
    )
    assert load_recalibrator(cal.to_dict()).to_dict() == cal.to_dict()


def test_an_asset_without_calibration_gets_the_pooled_location_and_no_map() -> None:
    rng = np.random.default_rng(8)
    pit = {5: rng.uniform(0, 1, 300), 240: rng.uniform(0, 1, 300)}
    a = LocationShrink(
        {5: 1.0, 240: 0.0}, {5: np.linspace(1.1, 1.0, GRID.size), 240: np.linspace(0.9, 1.0, 21)}
    )
    b = LocationShrink(
        {5: 1.0, 240: 1.0}, {5: np.linspace(1.3, 1.0, GRID.size), 240: np.linspace(1.05, 1.0, 21)}
    )
    payloads = {
        "EURUSD": QuantileRecalibrator.fit(pit, location=a).to_dict(),
        "GBPUSD": CellRecalibrator.fit(
            pit, np.zeros(300, dtype=np.int64), 100, location=b
        ).to_dict(),
    }
    unseen = pooled_location(payloads)
    assert unseen is not None and unseen.location is not None
    assert unseen.location.keep == LocationShrink.pool([a, b]).keep == {5: 1.0, 240: 0.0}
    assert unseen.fitted_on["pooled_from"] == ["EURUSD", "GBPUSD"]
    x = 0.5 + rng.standard_normal((4, 30))
    ns = np.zeros(4, dtype=np.int64)
    np.testing.assert_allclose(unseen.transform_at(5, x, ns), x, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(unseen.transform_at(240, x, ns), shrink_location(x, 0.0), atol=1e-12)
    # calibrations fitted without the shrink: nothing to pool, the asset stays uncalibrated
    payloads["GBPUSD"] = QuantileRecalibrator.fit(pit).to_dict()
    assert pooled_location(payloads) is None
    assert pooled_location({}) is None


def test_shrunk_pit_of_an_overconfident_location_is_flatter() -> None:
    """What the map is then fitted on: the PIT of the shrunk forecasts, closer to uniform when
    the location was too large (so the map has less to repair)."""
    x, y = _forecasts(4000, 64, 0.0, 1.0, seed=9)
    raw = np.histogram(sample_cdf(x, y), bins=10, range=(0, 1))[0] / len(y)
    shrunk = np.histogram(sample_cdf(shrink_location(x, 0.0), y), bins=10, range=(0, 1))[0] / 4000
    assert np.abs(shrunk - 0.1).max() < np.abs(raw - 0.1).max()
