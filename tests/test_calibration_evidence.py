"""Evidence-weighted quantile maps: closed forms of the Cramér–von Mises distance and of the count
of independent outcomes, and forecasters of known error whose calibration outcomes overlap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forex_diffusion.calibration import (
    GROUPINGS,
    CellRecalibrator,
    QuantileRecalibrator,
    pit_values,
)
from forex_diffusion.calibration.quantile_map import (
    cramer_von_mises,
    evidence_weight,
    independent_by_horizon,
    independent_outcomes,
)
from forex_diffusion.forecast import sample_quantile

MINUTE = 60_000_000_000


def _ns(minutes: np.ndarray) -> np.ndarray:
    return (pd.Timestamp("2018-11-05", tz="UTC").value + np.asarray(minutes) * MINUTE).astype(
        np.int64
    )


def test_cramer_von_mises_closed_forms() -> None:
    n = 40
    # values on their own plotting positions: only the discretisation term 1/(12 n²) is left
    at_positions = (2 * np.arange(1, n + 1) - 1) / (2 * n)
    assert cramer_von_mises(at_positions) == pytest.approx(1 / (12 * n**2))
    # all mass at 0: Ĝ = 1 on (0, 1], ∫ (1 − u)² du = 1/3; at 1: ∫ u² du = 1/3
    assert cramer_von_mises(np.zeros(n)) == pytest.approx(1 / 3)
    assert cramer_von_mises(np.ones(n)) == pytest.approx(1 / 3)
    # order does not matter, non-finite values are left out
    rng = np.random.default_rng(0)
    u = rng.uniform(size=n)
    assert cramer_von_mises(u[::-1]) == pytest.approx(cramer_von_mises(u))
    assert cramer_von_mises(np.r_[u, np.nan]) == pytest.approx(cramer_von_mises(u))
    # scipy's statistic is n·ω²
    assert n * cramer_von_mises(u) == pytest.approx(stats.cramervonmises(u, "uniform").statistic)
    with pytest.raises(ValueError, match="at least one finite"):
        cramer_von_mises(np.array([np.nan]))


def test_the_distance_of_a_calibrated_forecaster_has_mean_one_sixth_over_n() -> None:
    rng = np.random.default_rng(1)
    n = 300
    draws = np.array([n * cramer_von_mises(rng.uniform(size=n)) for _ in range(4000)])
    se = draws.std() / np.sqrt(draws.size)
    assert abs(draws.mean() - 1 / 6) < 4 * se


def test_independent_outcomes_counts_windows_that_do_not_overlap() -> None:
    every_40 = np.arange(0, 1440, 40)  # one day, 36 forecasts
    assert independent_outcomes(_ns(every_40), 5) == 36
    assert independent_outcomes(_ns(every_40), 40) == 36
    assert independent_outcomes(_ns(every_40), 240) == 6  # 0, 240, …, 1200
    assert independent_outcomes(_ns(every_40), 241) == 6  # 0, 280, 560, 840, 1120, 1400
    # a second day after a weekend: the count starts again from its first forecast
    two_days = np.r_[every_40, every_40 + 3 * 1440]
    assert independent_outcomes(_ns(two_days), 240) == 12
    assert independent_outcomes(_ns(two_days[::-1]), 240) == 12  # any order
    assert independent_outcomes(_ns(np.array([], dtype=np.int64)), 60) == 0
    # per horizon, only the forecasts whose PIT is finite count
    pit = np.full(every_40.size, 0.5)
    pit[1::2] = np.nan  # every 80 minutes left
    got = independent_by_horizon({5: np.full(every_40.size, 0.5), 60: pit}, _ns(every_40))
    assert got == {5: 36, 60: 18}


def test_evidence_weight_follows_its_closed_form() -> None:
    rng = np.random.default_rng(2)
    u = rng.uniform(size=500)
    omega2 = cramer_von_mises(u)
    for n in (10, 100, 1000, 10_000):
        assert evidence_weight(u, n) == pytest.approx(max(0.0, 1 - 1 / (6 * n * omega2)))
    assert evidence_weight(u, 0) == 0.0
    # a forecaster twice too narrow, on 1500 independent outcomes: its map is kept whole
    narrow = stats.norm.cdf(2 * rng.standard_normal(1500))
    assert evidence_weight(narrow, 1500) > 0.99
    # the same values backed by a dozen independent outcomes: noise, the identity
    assert evidence_weight(narrow, 12) < 0.5


def _overlapping_forecaster(rng: np.random.Generator, independent: int, overlap: int, width: float):
    """Outcomes y of a calibration range with ``independent`` independent draws, each repeated
    by ``overlap`` consecutive forecasts (as the overlapping windows of a long horizon), with
    forecasts N(0, (width·σ)²) as 100 samples; (y, samples)."""
    sigma = np.exp(rng.normal(0, 0.5, independent))
    y = np.repeat(rng.normal(0, sigma), overlap)
    sigma = np.repeat(sigma, overlap)
    return y, rng.normal(0, width * sigma[:, None], (y.size, 100))


def _coverage90(samples: np.ndarray, y: np.ndarray) -> float:
    lo, hi = sample_quantile(samples, np.array([0.05, 0.95])).T
    return float(np.mean((y >= lo) & (y <= hi)))


def test_a_calibrated_forecaster_on_overlapping_outcomes_keeps_its_coverage() -> None:
    """1500 forecasts whose outcomes overlap by six (250 independent), fitted 40 times: the plain
    map widens and narrows with the noise of 250 outcomes, the evidence-weighted one stays
    nearer the identity, and its coverage on fresh data nearer nominal."""
    rng = np.random.default_rng(3)
    y_test, s_test = _overlapping_forecaster(rng, 20_000, 1, 1.0)
    t = _ns(np.arange(1500) * 40)
    err_plain, err_evidence, dev_plain, dev_evidence = [], [], [], []
    levels = np.linspace(0.02, 0.98, 49)
    for _ in range(40):
        y, s = _overlapping_forecaster(rng, 250, 6, 1.0)
        pit = {240: pit_values(s, y)}
        plain = QuantileRecalibrator.fit(pit)
        weighed = QuantileRecalibrator.fit(pit, independent=independent_by_horizon(pit, t))
        assert weighed.fitted_on["evidence"]["240"]["independent_outcomes"] == 250
        for cal, err, dev in ((plain, err_plain, dev_plain), (weighed, err_evidence, dev_evidence)):
            err.append(abs(_coverage90(cal.transform_samples(240, s_test), y_test) - 0.9))
            dev.append(np.abs(cal.model_levels(240, levels) - levels).max())
    assert np.mean(dev_evidence) < 0.5 * np.mean(dev_plain), (dev_evidence, dev_plain)
    assert np.mean(err_evidence) < 0.6 * np.mean(err_plain), (err_evidence, err_plain)


@pytest.mark.parametrize("width", [0.6, 1.5])
def test_a_miscalibrated_forecaster_is_still_corrected_on_overlapping_outcomes(
    width: float,
) -> None:
    rng = np.random.default_rng(4)
    y, s = _overlapping_forecaster(rng, 1000, 6, width)
    t = _ns(np.arange(y.size) * 40)
    pit = {240: pit_values(s, y)}
    cal = QuantileRecalibrator.fit(pit, independent=independent_by_horizon(pit, t))
    assert cal.fitted_on["evidence"]["240"]["map_weight"] > 0.95
    y_test, s_test = _overlapping_forecaster(rng, 20_000, 1, width)
    assert abs(_coverage90(s_test, y_test) - 0.9) > 0.08  # really miscalibrated
    assert abs(_coverage90(cal.transform_samples(240, s_test), y_test) - 0.9) < 0.015


def test_a_map_without_evidence_is_the_identity() -> None:
    rng = np.random.default_rng(5)
    y, s = _overlapping_forecaster(rng, 200, 1, 1.3)
    pit = {60: pit_values(s, y)}
    cal = QuantileRecalibrator.fit(pit, independent={60: 0})
    assert cal.fitted_on["evidence"] == {"60": {"independent_outcomes": 0, "map_weight": 0.0}}
    np.testing.assert_allclose(cal.transform_samples(60, s), s, atol=1e-12)
    # round trip keeps the record of the evidence
    again = QuantileRecalibrator.from_dict(cal.to_dict())
    assert again.fitted_on["evidence"] == cal.fitted_on["evidence"]


def test_cell_maps_weigh_each_cell_by_its_own_outcomes() -> None:
    """Forecasts every 40 minutes for 60 days, twice too narrow: every cell's 5-min map is
    backed by its own forecasts and kept, its 240-min map by the few independent outcomes of the
    cell (one session of a few hours a day) and shrunk further than the per-horizon map."""
    rng = np.random.default_rng(6)
    minutes = np.arange(0, 60 * 1440, 40)
    y, s = _overlapping_forecaster(rng, minutes.size, 1, 0.5)
    pit = {5: pit_values(s, y), 240: pit_values(s, y)}
    cal = CellRecalibrator.fit(pit, _ns(minutes), evidence=True)
    base = cal.base.fitted_on["evidence"]
    assert base["5"]["independent_outcomes"] == minutes.size
    assert base["240"]["independent_outcomes"] == minutes.size // 6
    t = _ns(minutes)
    cell = GROUPINGS["session"].cell_of_ns(t)
    assert len(cal.by_cell) >= 3
    for i, name in enumerate(GROUPINGS["session"].cells):
        if name not in cal.by_cell:
            continue
        rows = cell == i
        ev = cal.by_cell[name].fitted_on["evidence"]
        assert ev["5"]["independent_outcomes"] == rows.sum()
        assert ev["240"]["independent_outcomes"] == independent_outcomes(t[rows], 240)
        assert ev["240"]["independent_outcomes"] < rows.sum() / 2
        for h in (5, 240):
            n = ev[str(h)]["independent_outcomes"]
            assert ev[str(h)]["map_weight"] == pytest.approx(evidence_weight(pit[h][rows], n))
        assert ev["5"]["map_weight"] > 0.9
    plain = CellRecalibrator.fit(pit, t)
    assert "evidence" not in plain.base.fitted_on
