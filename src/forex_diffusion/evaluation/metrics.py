"""Forecast-quality metrics as pure functions on arrays (SPEC §7).

Conventions: observations ``y`` have some shape B (e.g. (N,) or (N, H)); sample arrays have
shape B + (S,) (members on the last axis); quantile arrays have shape (Q,) + B. NaN in an
input marks a missing pair: per-element scores come back NaN there and the aggregates
(means, coverage, accuracy) skip it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scoringrules as sr
from scipy import stats

# the sample CRPS lives with the forecast type (training metrics use it too), the closed forms
# with the parametric forecasts (the baselines use them); re-exported here
from forex_diffusion.forecast import crps_ensemble_fair as crps_ensemble_fair
from forex_diffusion.models.distribution import crps_gaussian as crps_gaussian
from forex_diffusion.models.distribution import crps_student_t as crps_student_t

# Named on every call: scoringrules' default backend is process-wide state (numba when
# installed, which compiles on first use).
_BACKEND = "numpy"


# --------------------------------------------------------------------------- CRPS


def crps_skill(crps: np.ndarray, crps_ref: np.ndarray) -> float:
    """Skill 1 − mean(CRPS) / mean(CRPS_ref) over the pairs where both are finite.

    Positive = better than the reference; NaN when nothing is comparable.
    """
    a = np.asarray(crps, dtype=np.float64)
    b = np.asarray(crps_ref, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any() or b[ok].mean() <= 0:
        return float("nan")
    return float(1.0 - a[ok].mean() / b[ok].mean())


# --------------------------------------------------------------------------- quantiles


def pinball_loss(quantiles: np.ndarray, y: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Elementwise pinball (quantile) loss.

    Args:
        quantiles: (Q,) + B predicted quantiles.
        y: B observations.
        levels: (Q,) quantile levels in (0, 1).

    Returns:
        (Q,) + B losses ρ_q(y − Q_q) = max(q (y − Q_q), (q − 1)(y − Q_q))
        (``scoringrules.quantile_score``).
    """
    qp = np.asarray(quantiles, dtype=np.float64)
    lv = np.asarray(levels, dtype=np.float64).reshape((-1,) + (1,) * np.ndim(y))
    obs = np.asarray(y, dtype=np.float64)[None]
    return np.asarray(sr.quantile_score(obs, qp, lv, backend=_BACKEND))


def weighted_quantile_loss(quantiles: np.ndarray, y: np.ndarray, levels: np.ndarray) -> float:
    """Weighted quantile loss (GluonTS ``mean_wQuantileLoss``) over the finite pairs.

    wQL_q = 2 Σ ρ_q(y − Q_q) / Σ |y|, averaged over the levels. Scale-free; 2·mean
    pinball over a dense level grid approximates the CRPS.
    """
    y = np.asarray(y, dtype=np.float64)
    qp = np.asarray(quantiles, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(qp).all(axis=0)
    denom = np.abs(y[ok]).sum()
    if not ok.any() or denom <= 0:
        return float("nan")
    loss = pinball_loss(qp[:, ok], y[ok], levels)
    return float((2.0 * loss.sum(axis=1) / denom).mean())


def interval_coverage(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> float:
    """Share of finite observations inside [lower, upper]."""
    lo, hi, y = (np.asarray(a, dtype=np.float64) for a in (lower, upper, y))
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(y)
    if not ok.any():
        return float("nan")
    return float(((y[ok] >= lo[ok]) & (y[ok] <= hi[ok])).mean())


def quantile_hit_rates(quantiles: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Observed frequency of y ≤ Q_q per level (the reliability diagram's y axis).

    Args:
        quantiles: (Q,) + B; y: B.

    Returns:
        (Q,) frequencies (NaN if no finite pair).
    """
    qp = np.asarray(quantiles, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(qp).all(axis=0)
    if not ok.any():
        return np.full(qp.shape[0], np.nan)
    return (y[ok][None] <= qp[:, ok]).mean(axis=1)


# --------------------------------------------------------------------------- PIT


def pit_histogram(pit: np.ndarray, bins: int = 10) -> np.ndarray:
    """Counts of the finite PIT values in ``bins`` equal-width bins of [0, 1]."""
    p = np.asarray(pit, dtype=np.float64).ravel()
    p = p[np.isfinite(p)]
    counts, _ = np.histogram(np.clip(p, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return counts


def pit_uniformity_pvalue(counts: np.ndarray) -> float:
    """Chi-square goodness-of-fit p-value of a PIT histogram against uniform counts.

    Assumes independent PIT values; overlapping multi-step forecasts are autocorrelated,
    so read it as descriptive for long horizons.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        return float("nan")
    return float(stats.chisquare(counts).pvalue)


# --------------------------------------------------------------------------- point / direction


def mae(pred: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute error over the finite pairs."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    d = d[np.isfinite(d)]
    return float(np.abs(d).mean()) if d.size else float("nan")


def rmse(pred: np.ndarray, actual: np.ndarray) -> float:
    """Root mean squared error over the finite pairs."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    d = d[np.isfinite(d)]
    return float(np.sqrt((d * d).mean())) if d.size else float("nan")


@dataclass(frozen=True)
class DirectionalAccuracy:
    """Hit rate of predicted signs.

    Attributes:
        accuracy: share of correct signs among the counted pairs (NaN if none).
        n: pairs counted (both signs non-zero and finite).
        n_predicted_flat: finite pairs skipped because the forecast had no direction (0).
    """

    accuracy: float
    n: int
    n_predicted_flat: int


def directional_accuracy(pred: np.ndarray, actual: np.ndarray) -> DirectionalAccuracy:
    """Share of correct signs, counting only pairs where both prediction and outcome move.

    Outcomes of exactly zero (no price change) and forecasts of exactly zero (no direction,
    e.g. a zero-mean random walk) are excluded; the latter are counted separately.
    """
    p = np.asarray(pred, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    finite = np.isfinite(p) & np.isfinite(a) & (a != 0)
    counted = finite & (p != 0)
    n = int(counted.sum())
    acc = float((np.sign(p[counted]) == np.sign(a[counted])).mean()) if n else float("nan")
    return DirectionalAccuracy(acc, n, int((finite & (p == 0)).sum()))
