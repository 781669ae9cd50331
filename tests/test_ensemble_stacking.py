"""StackingForecaster on synthetic data: uncertainty reweighting, stack vs members; CRPS pool."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from forex_diffusion.ensemble import (
    PurgedTimeSeriesSplit,
    StackingForecaster,
    fit_linear_pool,
    pool_forecast,
)
from forex_diffusion.ensemble.reweighting import relative_log_std
from forex_diffusion.models.distribution import ForecastDistribution


class StdSignalMember(RegressorMixin, BaseEstimator):
    """A member whose forecast and predicted std are columns of X (a known std signal)."""

    def __init__(self, column: str = "o") -> None:
        self.column = column

    def fit(self, X: pd.DataFrame, y: Any) -> StdSignalMember:
        self.n_fitted_ = len(X)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return X[self.column].to_numpy()

    def predict_std(self, X: pd.DataFrame) -> np.ndarray:
        return X[f"{self.column}_std"].to_numpy()


def _market(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Alternating calm/volatile spells; member "o" is accurate and sure of itself when calm,
    useless and unsure when volatile; feature f1 is a noisy view of the target throughout."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 30, size=n)
    volatile = np.repeat(np.arange(len(lengths)) % 2, lengths)[:n].astype(bool)
    vol = np.where(volatile, 2.0, 1.0)
    y = vol * rng.normal(size=n)
    f1 = y + vol * rng.normal(size=n)
    o = np.where(volatile, 3.0 * rng.normal(size=n), y + 0.2 * rng.normal(size=n))
    o_std = np.where(volatile, 3.0, 0.25) * np.exp(0.1 * rng.normal(size=n))
    t = pd.date_range("2021-01-04", periods=n, freq="5min", tz="UTC")
    X = pd.DataFrame({"f1": f1, "o": o, "o_std": o_std}, index=t)
    return X, pd.Series(y, index=t), volatile


def _stack() -> StackingForecaster:
    ridge = make_pipeline(ColumnTransformer([("f", "passthrough", ["f1"])]), Ridge())
    return StackingForecaster(
        members=[("ridge", ridge), ("sssd", StdSignalMember())],
        cv=PurgedTimeSeriesSplit(4, horizon_minutes=60),
        std_window=48,
    )


def _rmse(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - y) ** 2)))


def test_weight_follows_the_std_signal_and_the_stack_beats_every_member() -> None:
    X, y, volatile = _market(4000, seed=0)
    stack = _stack().fit(X.iloc[:3000], y.iloc[:3000])
    out = stack.predict_with_weights(X.iloc[3000:])
    yt, vt = y.iloc[3000:].to_numpy(), volatile[3000:]
    w = out.weights["sssd"].to_numpy()
    lo, hi = stack.weight_bounds
    # measured, not pinned: the weight moves, is rarely at a bound, and is higher when calm
    assert stack.gamma_ > 0
    assert np.mean((w <= lo + 1e-9) | (w >= hi - 1e-9)) < 0.2
    assert w[~vt].mean() > 0.3 > 0.1 > w[vt].mean()
    # the other member takes the rest: weights of a row sum to the same budget
    np.testing.assert_allclose(
        out.weights["ridge"], (1 - w) * stack.base_coef_[0], rtol=1e-12, atol=1e-12
    )
    stacked = _rmse(out.prediction.to_numpy(), yt)
    for name in out.members:
        assert stacked < 0.97 * _rmse(out.members[name].to_numpy(), yt), name
    # the weights returned are the ones used
    recomputed = (
        out.weights["intercept"]
        + (out.weights[["ridge", "sssd"]] * out.members).sum(axis=1)
        + out.weights["std_coef"] * out.z
    )
    np.testing.assert_allclose(recomputed, out.prediction, rtol=1e-10, atol=1e-10)


def test_a_useless_std_signal_keeps_the_weight_flat() -> None:
    X, y, _ = _market(3000, seed=1)
    rng = np.random.default_rng(5)
    X["o_std"] = np.exp(0.3 * rng.normal(size=len(X)))  # unrelated to the member's errors
    stack = _stack().fit(X.iloc[:2400], y.iloc[:2400])
    w = stack.predict_with_weights(X.iloc[2400:]).weights["sssd"]
    assert stack.gamma_ <= 0.5 and float(w.std()) < 0.05


def test_stack_clones_and_out_of_fold_rows_skip_the_first_block() -> None:
    X, y, _ = _market(1000, seed=2)
    stack = _stack()
    assert clone(stack).get_params()["std_window"] == 48
    stack.set_params(std_window=24).fit(X, y)
    assert stack.std_window == 24
    assert stack.oof_.index[0] == X.index[200]  # walk-forward: block 0 is never tested
    assert set(stack.oof_["fold"]) == {0, 1, 2, 3}


def test_uncertainty_member_must_predict_a_std() -> None:
    X, y, _ = _market(300, seed=3)
    stack = StackingForecaster(members=[("ridge", Ridge()), ("sssd", Ridge())], cv=_stack().cv)
    with pytest.raises(ValueError, match="predict_std"):
        stack.fit(X, y)


def test_relative_log_std_is_causal() -> None:
    s = np.exp(np.random.default_rng(0).normal(size=200))
    z = relative_log_std(s, None, 10)
    changed = s.copy()
    changed[150:] *= 10.0
    np.testing.assert_array_equal(relative_log_std(changed, None, 10)[:150], z[:150])
    assert z[0] == 0.0


def test_crps_pool_prefers_the_calibrated_member() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    t = pd.date_range("2021-01-04", periods=n, freq="5min", tz="UTC")
    scale = np.exp(0.5 * rng.normal(size=(n, 2)))
    y = scale * rng.normal(size=(n, 2))
    calibrated = ForecastDistribution.from_samples(
        "calibrated", t, (15, 60), scale[..., None] * rng.normal(size=(n, 2, 64))
    )
    biased = ForecastDistribution.gaussian("biased", t, (15, 60), 1.0 * scale, scale)
    pool = fit_linear_pool([calibrated, biased], y)
    assert pool.weights.shape == (2, 2)
    np.testing.assert_allclose(pool.weights.sum(axis=1), 1.0)
    assert (pool.weights[:, 0] > 0.8).all()
    pooled = pool_forecast(pool, [calibrated, biased], n_samples=100)
    assert pooled.shape == (n, 2)
    # the pool's mean CRPS is no worse than the better member's (it is fitted on these rows)
    best = np.nanmean(calibrated.crps(y), axis=0)
    assert (np.nanmean(pooled.crps(y), axis=0) <= best * 1.02).all()


def test_pool_needs_matching_components() -> None:
    t = pd.date_range("2021-01-04", periods=10, freq="5min", tz="UTC")
    a = ForecastDistribution.gaussian("a", t, (5,), np.zeros((10, 1)), np.ones((10, 1)))
    b = ForecastDistribution.gaussian("b", t[:10], (15,), np.zeros((10, 1)), np.ones((10, 1)))
    with pytest.raises(ValueError, match="other decision times or horizons"):
        fit_linear_pool([a, b], np.zeros((10, 1)))
