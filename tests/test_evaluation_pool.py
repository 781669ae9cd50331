"""The online CRPS pool: weights only from outcomes already known, and it prefers the
calibrated member."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forex_diffusion.models.distribution import ForecastDistribution
from forex_diffusion.models.pool import online_pool

H = (5, 60)


def _members(n: int = 24 * 28, seed: int = 0):
    rng = np.random.default_rng(seed)
    times = pd.date_range("2021-03-01", periods=n, freq="h", tz="UTC")
    y = rng.normal(0, 1, (n, 2))
    good = ForecastDistribution.from_samples("good", times, H, rng.normal(0, 1, (n, 2, 200)))
    biased = ForecastDistribution.gaussian(
        "biased", times, H, np.full((n, 2), 1.5), np.ones((n, 2))
    )
    return times, y, good, biased


def test_pool_uses_only_outcomes_known_at_each_block() -> None:
    times, y, good, biased = _members()
    pool = online_pool([good, biased], y)
    assert pool.samples is not None and np.isfinite(pool.samples).all()
    cut = times[0] + pd.Timedelta(days=14)  # a block start
    later = y.copy()
    later[times + pd.Timedelta(minutes=5) > cut] += 3.0  # outcomes unknown at the cut change
    again = online_pool([good, biased], later)
    block = (times >= cut) & (times < cut + pd.Timedelta(days=7))
    np.testing.assert_array_equal(pool.samples[block, 0], again.samples[block, 0])
    # ... and the next block, which has seen them, differs (the check can fail)
    nxt = (times >= cut + pd.Timedelta(days=7)) & (times < cut + pd.Timedelta(days=14))
    assert not np.array_equal(pool.samples[nxt, 0], again.samples[nxt, 0])


def test_pool_puts_its_weight_on_the_calibrated_member() -> None:
    times, y, good, biased = _members()
    pool = online_pool([good, biased], y)
    last_week = times >= times[-1] - pd.Timedelta(days=6)
    mean = pool.samples[last_week].mean()
    assert abs(mean) < 0.15  # the biased member (mean 1.5) has little weight
    crps = {f.name: np.nanmean(f.crps(y)[last_week]) for f in (good, biased, pool)}
    assert crps["pool"] < crps["biased"] and crps["pool"] < crps["good"] * 1.03
