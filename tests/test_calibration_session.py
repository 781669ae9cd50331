"""Session-conditional quantile recalibration against a forecaster too narrow in one session."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.calibration import (
    CellRecalibrator,
    QuantileRecalibrator,
    load_recalibrator,
    pit_values,
)
from forex_diffusion.evaluation import conditional_coverage
from forex_diffusion.forecast import sample_quantile
from forex_diffusion.sessions import SESSIONS, session_index, session_of_ns

COVERAGES = (0.5, 0.8, 0.9, 0.95)
NARROW = "New York"
HOURS = 3_600_000_000_000


def _times(rng: np.random.Generator, n: int) -> np.ndarray:
    """(N,) decision times (ns) at random hours of 2023."""
    start = pd.Timestamp("2023-01-02", tz="UTC").value
    return start + rng.integers(0, 300 * 24, n) * HOURS


def _forecaster(rng: np.random.Generator, ns: np.ndarray, s: int = 100):
    """Outcomes y ~ N(0, σ²); forecasts N(0, (w σ)²) with w = 0.6 in New York, else 1.1."""
    n = len(ns)
    sigma = np.exp(rng.normal(0, 0.5, n))
    width = np.where(session_of_ns(ns) == [x.name for x in SESSIONS].index(NARROW), 0.6, 1.1)
    y = rng.normal(0, sigma)
    samples = rng.normal(0, (width * sigma)[:, None], (n, s))
    return y, samples


def _coverage(samples: np.ndarray, y: np.ndarray, c: float) -> float:
    lo, hi = sample_quantile(samples, np.array([(1 - c) / 2, (1 + c) / 2])).T
    return float(np.mean((y >= lo) & (y <= hi)))


def _fit(rng: np.random.Generator, n: int = 12000, **kw) -> CellRecalibrator:
    ns = _times(rng, n)
    y, s = _forecaster(rng, ns)
    pit = pit_values(s, y)
    return CellRecalibrator.fit({5: pit, 60: pit[::-1].copy()}, ns, **kw)


def test_sessions_are_one_definition() -> None:
    assert conditional_coverage.SESSIONS is SESSIONS
    assert conditional_coverage.session_index is session_index
    ns = pd.DatetimeIndex(["2023-03-01 06:59", "2023-03-01 07:00", "2023-03-01 23:30"], tz="UTC")
    np.testing.assert_array_equal(
        session_of_ns(ns.as_unit("ns").asi8), session_index(ns.hour.to_numpy())
    )


def test_session_maps_make_each_session_nominal_where_one_map_does_not() -> None:
    rng = np.random.default_rng(0)
    ns = _times(rng, 12000)
    y, s = _forecaster(rng, ns)
    pit = pit_values(s, y)
    by_session = CellRecalibrator.fit({5: pit}, ns, min_forecasts=200)
    per_horizon = QuantileRecalibrator.fit({5: pit})
    assert set(by_session.by_cell) == {x.name for x in SESSIONS}

    fresh_ns = _times(rng, 16000)
    y, s = _forecaster(rng, fresh_ns)
    cond = by_session.transform_at(5, s, fresh_ns)
    flat = per_horizon.transform_at(5, s, fresh_ns)
    session = session_of_ns(fresh_ns)
    for i, sess in enumerate(SESSIONS):
        rows = session == i
        for c in COVERAGES:
            se = np.sqrt(c * (1 - c) / rows.sum())
            got = _coverage(cond[rows], y[rows], c)
            assert abs(got - c) < 4 * se + 0.005, (sess.name, c, got)
        # one map for all sessions: too narrow in New York, too wide elsewhere
        missed = _coverage(flat[rows], y[rows], 0.9) - 0.9
        se90 = np.sqrt(0.09 / rows.sum())
        assert (missed < -6 * se90) if sess.name == NARROW else (missed > 3 * se90), (
            sess.name,
            missed,
        )


def test_thin_cells_fall_back_to_the_per_horizon_map() -> None:
    rng = np.random.default_rng(1)
    ns = _times(rng, 3000)
    y, s = _forecaster(rng, ns)
    pit = pit_values(s, y)
    session = session_of_ns(ns)
    late = [x.name for x in SESSIONS].index("Late")
    threshold = int((session == late).sum()) + 1  # every other session has more forecasts
    assert all((session == i).sum() >= threshold for i in range(len(SESSIONS)) if i != late)
    cal = CellRecalibrator.fit({5: pit}, ns, min_forecasts=threshold)
    assert "Late" not in cal.by_cell and len(cal.by_cell) == len(SESSIONS) - 1
    assert cal.for_cell(5, "Late") is cal.base
    assert cal.for_cell(5, NARROW) is cal.by_cell[NARROW]
    rows = session == late
    np.testing.assert_array_equal(
        cal.transform_at(5, s, ns)[rows], cal.base.transform_samples(5, s[rows])
    )
    with pytest.raises(ValueError, match="min_forecasts"):
        CellRecalibrator.fit({5: pit}, ns, min_forecasts=1)
    with pytest.raises(ValueError, match="PIT values"):
        CellRecalibrator.fit({5: pit[:-1]}, ns)


def test_session_maps_never_cross_quantiles() -> None:
    rng = np.random.default_rng(2)
    cal = _fit(rng, 4000, min_forecasts=50)
    levels = np.linspace(0, 1, 1001)
    for h in (5, 60):
        for sess in SESSIONS:
            u = cal.for_cell(h, sess.name).model_levels(h, levels)
            assert np.all(np.diff(u) >= 0) and u[0] >= 0 and u[-1] <= 1
        ns = _times(rng, 500)
        x = rng.standard_t(3, (500, 64))
        out = cal.transform_at(h, x, ns)
        ranked = np.take_along_axis(out, np.argsort(x, axis=1, kind="stable"), axis=1)
        assert np.all(np.diff(ranked, axis=1) >= 0)


def test_round_trip_old_maps_and_bad_payloads() -> None:
    rng = np.random.default_rng(3)
    cal = _fit(rng, 4000, min_forecasts=400, fitted_on={"n": 4000})
    data = json.loads(json.dumps(cal.to_dict()))
    back = load_recalibrator(data)
    assert isinstance(back, CellRecalibrator) and back.to_dict() == cal.to_dict()
    ns = _times(rng, 300)
    x = rng.normal(size=(300, 50))
    for h in (5, 60):
        np.testing.assert_array_equal(back.transform_at(h, x, ns), cal.transform_at(h, x, ns))
    assert back.fitted_on == {"n": 4000} and back.min_forecasts == 400
    # a per-horizon payload (every checkpoint before this option) loads as before
    old = load_recalibrator(json.loads(json.dumps(cal.base.to_dict())))
    assert isinstance(old, QuantileRecalibrator)
    np.testing.assert_array_equal(old.transform_at(5, x, ns), cal.base.transform_samples(5, x))
    with pytest.raises(ValueError, match="differ from"):
        load_recalibrator({**data, "cells": {"Asia": [0, 24]}})
    with pytest.raises(ValueError, match="format"):
        load_recalibrator({**data, "format_version": 99})
    bad = json.loads(json.dumps(data))
    name = next(iter(bad["by_cell"]))
    bad["by_cell"][name]["maps"]["5"]["u"] = bad["by_cell"][name]["maps"]["5"]["u"][::-1]
    with pytest.raises(ValueError, match="not monotone"):
        load_recalibrator(bad)
    with pytest.raises(ValueError, match="decision times"):
        cal.transform_at(5, x, ns[:-1])


def test_calibrate_summary_names_the_session_maps() -> None:
    from pathlib import Path

    from forex_diffusion.cli.calibrate_cmd import describe
    from forex_diffusion.inference.calibrate import CalibrationResult
    from forex_diffusion.timeframes import UtcRange

    rng = np.random.default_rng(4)
    ns = _times(rng, 3000)
    y, s = _forecaster(rng, ns)
    late = int((session_of_ns(ns) == [x.name for x in SESSIONS].index("Late")).sum())
    cal = CellRecalibrator.fit({5: pit_values(s, y)}, ns, min_forecasts=late + 1)
    span = UtcRange(
        "validation", pd.Timestamp("2023-01-01", tz="UTC"), pd.Timestamp("2023-07-01", tz="UTC")
    )
    text = describe(
        {"EURUSD": CalibrationResult(cal, span, 3000, {5: 0.8}, {5: 0.9})}, Path("best.ckpt")
    )
    assert "Asia 5 min; London 5 min; New York 5 min (other cells: per-horizon map)" in text
    assert "80.0% ->  90.0%" in text
