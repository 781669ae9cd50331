"""LightGBM quantile peer: learns a heteroscedastic distribution, never crosses quantiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forex_diffusion.evaluation.peers import LightGBMQuantilePeer, quantiles_to_samples


def _data(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    x = rng.uniform(-1, 1, (n, 3))
    sigma = np.exp(1.2 * x[:, 0])
    y = 0.3 * x[:, 1] + sigma * rng.standard_normal(n)
    return pd.DataFrame(x, columns=["a", "b", "c"]), y, sigma


def test_peer_learns_conditional_quantiles() -> None:
    rng = np.random.default_rng(0)
    X, y, _ = _data(rng, 6000)
    peer = LightGBMQuantilePeer(levels=(0.05, 0.25, 0.5, 0.75, 0.95)).fit(X, {60: y})
    Xt, yt, sigma = _data(rng, 4000)
    q = peer.predict_quantiles(Xt, 60)
    assert np.all(np.diff(q, axis=1) >= 0)
    cover = np.mean((yt >= q[:, 0]) & (yt <= q[:, -1]))
    assert 0.86 < cover < 0.94
    # the interval width follows the true σ (a constant-width forecaster would not)
    width = q[:, -1] - q[:, 0]
    assert stats.spearmanr(width, sigma).statistic > 0.8
    # a scale divides the target and multiplies the prediction back
    peer2 = LightGBMQuantilePeer(levels=(0.05, 0.5, 0.95)).fit(
        X, {60: y * 3}, scale={60: np.full(len(y), 3.0)}
    )
    q2 = peer2.predict_quantiles(Xt, 60, scale=np.full(len(yt), 3.0))
    assert np.mean((3 * yt >= q2[:, 0]) & (3 * yt <= q2[:, -1])) == pytest.approx(cover, abs=0.03)


def test_quantiles_to_samples_is_exact_for_a_gaussian() -> None:
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    q = np.array([[stats.norm.ppf(lv, 1.0, 2.0) for lv in levels]])
    s = quantiles_to_samples(q, levels, 999)
    expected = stats.norm.ppf(np.arange(1, 1000) / 1000.0, 1.0, 2.0)
    np.testing.assert_allclose(s[0], expected, atol=1e-9)


def test_peer_refuses_other_features_and_tiny_data() -> None:
    rng = np.random.default_rng(1)
    X, y, _ = _data(rng, 300)
    peer = LightGBMQuantilePeer(levels=(0.1, 0.9)).fit(X, {5: y})
    with pytest.raises(ValueError, match="features differ"):
        peer.predict_quantiles(X[["b", "a", "c"]], 5)
    with pytest.raises(ValueError, match="usable training rows"):
        LightGBMQuantilePeer(levels=(0.5,)).fit(X.iloc[:10], {5: y[:10]})
