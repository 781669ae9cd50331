"""Phase-of-hour quantile recalibration against a forecaster too narrow on the full hour (where
scheduled releases fall) and too wide elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.calibration import (
    GROUPINGS,
    CellRecalibrator,
    QuantileRecalibrator,
    load_recalibrator,
    pit_values,
)
from forex_diffusion.forecast import sample_quantile
from forex_diffusion.sessions import phase_of_ns

MINUTE = 60_000_000_000


def _times(rng: np.random.Generator, n: int) -> np.ndarray:
    """(N,) decision times (ns) at random 5m bars of 2023."""
    start = pd.Timestamp("2023-01-02", tz="UTC").value
    return start + rng.integers(0, 300 * 24 * 12, n) * 5 * MINUTE


def _forecaster(rng: np.random.Generator, ns: np.ndarray, s: int = 100):
    """Outcomes y ~ N(0, σ²), σ twice as large at :00; forecasts N(0, (0.9 σ̄)²) everywhere, σ̄
    the mean scale: too narrow at :00, too wide at the other eleven slots."""
    full_hour = phase_of_ns(ns) == 0
    sigma = np.where(full_hour, 2.0, 1.0)
    y = rng.normal(0, sigma)
    samples = rng.normal(0, 0.9 * 13 / 12, (len(ns), s))
    return y, samples


def _coverage(samples: np.ndarray, y: np.ndarray, c: float) -> float:
    lo, hi = sample_quantile(samples, np.array([(1 - c) / 2, (1 + c) / 2])).T
    return float(np.mean((y >= lo) & (y <= hi)))


def test_phase_is_the_five_minute_slot_of_the_hour() -> None:
    t = pd.DatetimeIndex(
        ["2023-03-01 12:00", "2023-03-01 12:04:59", "2023-03-01 12:05", "2023-03-01 23:55"],
        tz="UTC",
    )
    np.testing.assert_array_equal(phase_of_ns(t.as_unit("ns").asi8), [0, 0, 1, 11])
    assert GROUPINGS["phase"].cells[0] == ":00" and len(GROUPINGS["phase"].cells) == 12


def test_phase_maps_make_the_full_hour_nominal_where_one_map_does_not() -> None:
    rng = np.random.default_rng(0)
    ns = _times(rng, 24000)
    y, s = _forecaster(rng, ns)
    pit = pit_values(s, y)
    by_phase = CellRecalibrator.fit({5: pit}, ns, min_forecasts=500, grouping="phase")
    per_horizon = QuantileRecalibrator.fit({5: pit})
    assert set(by_phase.by_cell) == set(GROUPINGS["phase"].cells)

    fresh = _times(rng, 48000)
    y, s = _forecaster(rng, fresh)
    cond = by_phase.transform_at(5, s, fresh)
    flat = per_horizon.transform_at(5, s, fresh)
    phase = phase_of_ns(fresh)
    for slot in (0, 1, 6):
        rows = phase == slot
        for c in (0.5, 0.9):
            se = np.sqrt(c * (1 - c) / rows.sum())
            got = _coverage(cond[rows], y[rows], c)
            assert abs(got - c) < 4 * se + 0.005, (slot, c, got)
    # one map for the whole hour: calibrated on average, too narrow on the full hour
    rows = phase == 0
    missed = _coverage(flat[rows], y[rows], 0.9) - 0.9
    assert missed < -6 * np.sqrt(0.09 / rows.sum()), missed


def test_phase_maps_round_trip_and_refuse_other_cells() -> None:
    rng = np.random.default_rng(1)
    ns = _times(rng, 6000)
    y, s = _forecaster(rng, ns)
    cal = CellRecalibrator.fit({5: pit_values(s, y)}, ns, min_forecasts=300, grouping="phase")
    data = json.loads(json.dumps(cal.to_dict()))
    assert data["kind"] == "phase"
    back = load_recalibrator(data)
    assert isinstance(back, CellRecalibrator) and back.grouping == "phase"
    np.testing.assert_array_equal(back.transform_at(5, s, ns), cal.transform_at(5, s, ns))
    with pytest.raises(ValueError, match="differ from"):
        load_recalibrator({**data, "cells": GROUPINGS["session"].definition})
    with pytest.raises(ValueError, match="unknown cell"):
        load_recalibrator({**data, "by_cell": {"Asia": data["by_cell"][":00"]}})
    with pytest.raises(ValueError, match="grouping"):
        CellRecalibrator.fit({5: pit_values(s, y)}, ns, grouping="weekday")


def test_session_maps_stored_before_phase_maps_still_load() -> None:
    rng = np.random.default_rng(2)
    ns = _times(rng, 4000)
    y, s = _forecaster(rng, ns)
    cal = CellRecalibrator.fit({5: pit_values(s, y)}, ns, min_forecasts=300)
    new = cal.to_dict()
    old = {  # the payload format 1 of the session maps
        "kind": "session",
        "format_version": 1,
        "min_forecasts": new["min_forecasts"],
        "sessions": new["cells"],
        "base": new["base"],
        "by_session": new["by_cell"],
    }
    back = load_recalibrator(json.loads(json.dumps(old)))
    assert isinstance(back, CellRecalibrator) and back.to_dict() == new
