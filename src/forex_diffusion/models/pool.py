"""A CRPS-optimal linear pool of predictive distributions (SSSD with the volatility baselines).

For a pool F = Σ_k w_k F_k (w on the simplex), CRPS(F, y) = Σ_k w_k E|X_k − y| −
½ Σ_k Σ_l w_k w_l E|X_k − X_l'|: a quadratic in w, convex on the simplex (E|X − X'| is a
conditionally negative-definite kernel). Its mean over the fit rows is minimised per horizon
with SLSQP. Every component is represented by samples (Gaussian forecasts by S quantiles at
the levels (i + ½)/S), the pairwise terms are computed exactly by sorting.

Where it does not help: when one component dominates on every row the pool puts (nearly) all
weight on it and equals it; a pool cannot fix a shared bias of its members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from forex_diffusion.models.distribution import ForecastDistribution
from forex_diffusion.normal import ndtri


def component_samples(dist: ForecastDistribution, n_quantiles: int = 100) -> np.ndarray:
    """(N, H, S) samples of a forecast: its own, or S quantiles of a Gaussian."""
    if dist.kind == "samples":
        assert dist.samples is not None
        return dist.samples
    levels = (np.arange(n_quantiles) + 0.5) / n_quantiles
    loc, scale = dist.mean(), dist.std()
    return loc[..., None] + scale[..., None] * ndtri(levels)


def _pair_sum(sorted_x: np.ndarray) -> np.ndarray:
    """Σ_i Σ_j |x_i − x_j| over ordered pairs of each row of sorted (…, m) samples."""
    m = sorted_x.shape[-1]
    w = 2.0 * np.arange(1, m + 1) - m - 1.0
    return 2.0 * (sorted_x * w).sum(axis=-1)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """E|A − B| for independent sample sets a (…, m) and b (…, n), exact, O((m + n) log)."""
    pooled = np.sort(np.concatenate([a, b], axis=-1), axis=-1)
    cross = (
        _pair_sum(pooled) - _pair_sum(np.sort(a, axis=-1)) - _pair_sum(np.sort(b, axis=-1))
    ) / 2
    return cross / (a.shape[-1] * b.shape[-1])


def mean_abs_spread(a: np.ndarray) -> np.ndarray:
    """E|A − A'| (unbiased: pairs of distinct members) for samples (…, m)."""
    m = a.shape[-1]
    return _pair_sum(np.sort(a, axis=-1)) / (m * (m - 1.0))


def crps_terms(samples: Sequence[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean CRPS pieces over rows: a (K,) = E|X_k − y|, B (K, K) = E|X_k − X_l'|.

    Args:
        samples: K arrays (N, S_k) for one horizon.
        y: (N,) outcomes; rows where y or any component is not finite are skipped.
    """
    ok = np.isfinite(y)
    for s in samples:
        ok &= np.isfinite(s).all(axis=1)
    if not ok.any():
        raise ValueError("no row where every component and the outcome are finite")
    xs = [s[ok] for s in samples]
    yy = y[ok]
    k = len(xs)
    a = np.array([np.abs(x - yy[:, None]).mean() for x in xs])
    B = np.empty((k, k))
    for i in range(k):
        B[i, i] = mean_abs_spread(xs[i]).mean()
        for j in range(i + 1, k):
            B[i, j] = B[j, i] = mean_abs_diff(xs[i], xs[j]).mean()
    return a, B


def optimal_weights(a: np.ndarray, B: np.ndarray) -> np.ndarray:
    """argmin over the simplex of a·w − ½ wᵀBw (the pool's mean CRPS)."""
    k = len(a)

    def f(w: np.ndarray) -> float:
        return float(a @ w - 0.5 * w @ B @ w)

    def grad(w: np.ndarray) -> np.ndarray:
        return np.asarray(a - B @ w)

    start = np.full(k, 1.0 / k)
    res = minimize(
        f,
        start,
        jac=grad,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * k,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(k)}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    w = np.clip(res.x, 0.0, None)
    return np.asarray(w / w.sum())


@dataclass(frozen=True)
class LinearPool:
    """Pool weights per horizon.

    Attributes:
        names: (K,) component names, in the order of the weights.
        horizons: (H,) minutes.
        weights: (H, K) weights on the simplex.
        fit_crps: (H, K + 1) mean CRPS on the fit rows of each component and of the pool.
    """

    names: tuple[str, ...]
    horizons: tuple[int, ...]
    weights: np.ndarray
    fit_crps: np.ndarray

    def to_dict(self) -> dict[str, object]:
        return {
            "names": list(self.names),
            "horizons": list(self.horizons),
            "weights": self.weights.tolist(),
            "fit_crps": self.fit_crps.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LinearPool:
        return cls(
            tuple(str(n) for n in data["names"]),  # type: ignore[attr-defined]
            tuple(int(h) for h in data["horizons"]),  # type: ignore[attr-defined]
            np.asarray(data["weights"], dtype=np.float64),
            np.asarray(data["fit_crps"], dtype=np.float64),
        )


def _check(components: Sequence[ForecastDistribution]) -> None:
    if len(components) < 2:
        raise ValueError("a pool needs at least 2 components")
    first = components[0]
    for c in components[1:]:
        if c.horizons != first.horizons or not c.times.equals(first.times):
            raise ValueError(
                f"component {c.name!r} has other decision times or horizons than {first.name!r}"
            )


def fit_linear_pool(
    components: Sequence[ForecastDistribution], y: np.ndarray, n_quantiles: int = 100
) -> LinearPool:
    """CRPS-optimal pool weights per horizon from forecasts and outcomes y (N, H) on the
    same decision times (fit them on rows the components did not train on)."""
    _check(components)
    horizons = components[0].horizons
    xs = [component_samples(c, n_quantiles) for c in components]
    y = np.asarray(y, dtype=np.float64)
    weights, crps = [], []
    for j in range(len(horizons)):
        a, B = crps_terms([x[:, j] for x in xs], y[:, j])
        w = optimal_weights(a, B)
        weights.append(w)
        crps.append(np.concatenate([a - 0.5 * np.diag(B), [a @ w - 0.5 * w @ B @ w]]))
    return LinearPool(
        tuple(c.name for c in components), tuple(horizons), np.array(weights), np.array(crps)
    )


def pool_forecast(
    pool: LinearPool,
    components: Sequence[ForecastDistribution],
    name: str = "pool",
    n_samples: int = 200,
) -> ForecastDistribution:
    """The pool as a sample forecast: round(w_k · n_samples) quantiles of each component
    (so the mixture's CDF is matched on a stratified grid), usable wherever a
    ``ForecastDistribution`` is (CRPS, coverage, PIT)."""
    _check(components)
    if tuple(c.name for c in components) != pool.names:
        raise ValueError(f"components {[c.name for c in components]} != pool {pool.names}")
    n, h = components[0].shape
    out = np.empty((n, h, n_samples))
    for j in range(h):
        counts = _allocate(pool.weights[j], n_samples)
        parts = []
        for c, cnt in zip(components, counts, strict=True):
            if cnt == 0:
                continue
            levels = (np.arange(cnt) + 0.5) / cnt
            q = c.quantile(levels)  # (cnt, N, H)
            parts.append(np.moveaxis(q[:, :, j], 0, -1))
        out[:, j] = np.concatenate(parts, axis=-1)
    return ForecastDistribution.from_samples(name, components[0].times, components[0].horizons, out)


def _allocate(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` proportional to ``weights`` (largest remainders)."""
    raw = weights * total
    counts = np.floor(raw).astype(int)
    short = total - counts.sum()
    counts[np.argsort(raw - counts)[::-1][:short]] += 1
    return counts


def online_pool(
    components: Sequence[ForecastDistribution],
    y: np.ndarray,
    block: pd.Timedelta = pd.Timedelta(days=7),
    min_rows: int = 20,
    name: str = "pool",
    n_samples: int = 200,
) -> ForecastDistribution:
    """The pool over an evaluated period with weights known at each time: decision times are
    cut into blocks; block b's weights are fitted on earlier decision times whose outcome
    (t + h) was known when the block began (equal weights until ``min_rows`` exist), so the
    pool never uses an outcome it could not have seen."""
    _check(components)
    times = components[0].times
    horizons = components[0].horizons
    y = np.asarray(y, dtype=np.float64)
    out = np.full((len(times), len(horizons), n_samples), np.nan)
    equal = np.full((len(horizons), len(components)), 1.0 / len(components))
    xs_all = [component_samples(c) for c in components]
    start = times.min() if len(times) else None
    while start is not None and start <= times.max():
        rows = (times >= start) & (times < start + block)
        if rows.any():
            known = np.stack(
                [times + pd.Timedelta(minutes=h) <= start for h in horizons], axis=1
            )  # (N, H): outcome known at the block start
            weights = equal.copy()
            for j in range(len(horizons)):
                if known[:, j].sum() >= min_rows:
                    y_fit = np.where(known[:, j], y[:, j], np.nan)
                    a, B = crps_terms([x[:, j] for x in xs_all], y_fit)
                    weights[j] = optimal_weights(a, B)
            pool = LinearPool(
                tuple(c.name for c in components), tuple(horizons), weights, np.zeros((0,))
            )
            part = pool_forecast(pool, [c.select(rows) for c in components], name, n_samples)
            assert part.samples is not None
            out[rows] = part.samples
        start = start + block
    return ForecastDistribution.from_samples(name, times, horizons, out)
