"""PurgedTimeSeriesSplit: no training target window touches its test fold, embargo, partition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_predict

from forex_diffusion.ensemble import PurgedTimeSeriesSplit
from sssd_test_utils import tiny_config

MIN = 60_000_000_000


def _frame(steps_min: list[int]) -> pd.DataFrame:
    t = pd.Timestamp("2021-03-01", tz="UTC") + pd.to_timedelta(np.cumsum(steps_min), unit="min")
    return pd.DataFrame({"x": np.arange(len(t), dtype=float)}, index=pd.DatetimeIndex(t))


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(st.sampled_from([5, 5, 5, 10, 15, 60, 2880]), min_size=12, max_size=150),
    n_splits=st.integers(2, 6),
    horizon=st.sampled_from([5, 15, 60, 240]),
    embargo=st.sampled_from([0, 30, 600, 3000]),
    walk_forward=st.booleans(),
)
def test_no_training_target_window_touches_its_test_fold(
    steps: list[int], n_splits: int, horizon: int, embargo: int, walk_forward: bool
) -> None:
    X = _frame(steps)
    cv = PurgedTimeSeriesSplit(n_splits, horizon, embargo, walk_forward)
    if len(X) < n_splits + walk_forward:
        with pytest.raises(ValueError):
            list(cv.split(X))
        return
    t = X.index.as_unit("ns").asi8
    h, e = horizon * MIN, embargo * MIN
    tested = np.zeros(len(t), dtype=int)
    folds = list(cv.split(X))
    assert len(folds) == cv.get_n_splits(X)
    for train, test in folds:
        assert len(test) > 0 and np.all(np.diff(test) == 1)  # one contiguous block
        tested[test] += 1
        assert not np.intersect1d(train, test).size
        t0, t1 = t[test[0]], t[test[-1]]
        tr = t[train]
        # the closed target windows [t, t + h] miss the test span [t0, t1 + h]
        assert np.all((tr + h < t0) | (tr > t1 + h))
        # embargo after the fold, and walk-forward trains on the past only
        assert np.all((tr < t0) | (tr >= t1 + h + e))
        if walk_forward:
            assert np.all(tr < t0)
        # nothing usable was dropped: every other sample outside purge/embargo is trained on
        after = (t > t1 + h) & (t >= t1 + h + e)
        usable = ((t + h < t0) | after) & ((not walk_forward) | (t < t0))
        np.testing.assert_array_equal(np.flatnonzero(usable), train)
    if walk_forward:
        assert tested.max() == 1 and tested[: len(t) // (n_splits + 1)].sum() == 0
    else:
        assert np.all(tested == 1)  # a partition


def test_cross_val_predict_needs_the_partition_mode() -> None:
    X = _frame([5] * 300)
    y = np.sin(np.arange(300) / 10.0)
    pred = cross_val_predict(Ridge(), X, y, cv=PurgedTimeSeriesSplit(4, 60, 60, False))
    assert pred.shape == (300,) and np.isfinite(pred).all()
    with pytest.raises(ValueError, match="partition"):
        cross_val_predict(Ridge(), X, y, cv=PurgedTimeSeriesSplit(4, 60, 60, True))


def test_from_config_uses_the_data_module_embargo() -> None:
    cfg = tiny_config()
    cv = PurgedTimeSeriesSplit.from_config(cfg, n_splits=3)
    assert cv.horizon_minutes == max(cfg.data.horizons)
    assert cv.embargo_minutes == cfg.data.effective_embargo_minutes


def test_x_without_decision_times_is_refused() -> None:
    with pytest.raises(ValueError, match="indexed by decision times"):
        list(PurgedTimeSeriesSplit().split(np.zeros((20, 2))))
