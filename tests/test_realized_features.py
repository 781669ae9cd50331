"""HAR realised-volatility features: loop references, causality, scale invariance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.features.realized import WINDOWS, per_bar_variances, realized_features


@pytest.fixture(scope="module")
def minutes() -> pd.DataFrame:
    return generate_synthetic_market("2021-03-01", "2021-03-15", seed=3)


def test_per_bar_variances_match_a_loop(minutes: pd.DataFrame) -> None:
    v = per_bar_variances(minutes)
    close = minutes["close"].to_numpy()
    idx = minutes.index
    monday = v.index[v.index.to_series().diff() > pd.Timedelta("1D")][0]
    for label in [*v.index[[1, 50, 400, -1]], monday]:
        inside = (idx >= label) & (idx < label + pd.Timedelta("5min"))
        pos = np.flatnonzero(inside)
        rv = sum(
            np.log(close[i] / close[i - 1]) ** 2
            for i in pos
            if i > 0 and idx[i] - idx[i - 1] <= pd.Timedelta("60min")
        )
        bar = minutes[inside]
        hl = np.log(bar["high"].max() / bar["low"].min())
        co = np.log(bar["close"].iloc[-1] / bar["open"].iloc[0])
        assert v.loc[label, "rv"] == pytest.approx(rv, rel=1e-12)
        assert v.loc[label, "pk"] == pytest.approx(hl**2 / (4 * np.log(2)), rel=1e-12)
        assert v.loc[label, "gk"] == pytest.approx(
            0.5 * hl**2 - (2 * np.log(2) - 1) * co**2, rel=1e-12
        )


def test_har_windows_are_log_vol_of_the_trailing_mean(minutes: pd.DataFrame) -> None:
    v = per_bar_variances(minutes)
    f = realized_features(minutes)
    w = WINDOWS["1h"]
    i = 500
    assert f["rv_1h"].iloc[i] == pytest.approx(0.5 * np.log(v["rv"].iloc[i - w + 1 : i + 1].mean()))
    assert f["gk_1d"].iloc[: WINDOWS["1d"] - 1].isna().all()
    assert np.isfinite(f["gk_1d"].iloc[WINDOWS["1d"] :]).all()


def test_causal_and_scale_free(minutes: pd.DataFrame) -> None:
    f = realized_features(minutes)
    t = f.index[1500]
    changed = minutes.copy()
    after = changed.index >= t + pd.Timedelta("5min")
    changed.loc[after, ["open", "high", "low", "close"]] *= 1.3
    g = realized_features(changed)
    pd.testing.assert_frame_equal(f.loc[:t], g.loc[:t])
    assert not f.loc[t + pd.Timedelta("10min") :].equals(g.loc[t + pd.Timedelta("10min") :])
    scaled = minutes.copy()
    scaled[["open", "high", "low", "close"]] *= 150.0
    np.testing.assert_allclose(realized_features(scaled).to_numpy(), f.to_numpy(), atol=1e-9)
