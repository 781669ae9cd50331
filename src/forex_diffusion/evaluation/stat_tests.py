"""Forecast comparison tests: Pesaran–Timmermann (direction) and Diebold–Mariano (loss).

References: Pesaran & Timmermann (1992), "A simple nonparametric test of predictive
performance", JBES 10(4); Diebold & Mariano (1995), JBES 13(3); Harvey, Leybourne & Newbold
(1997), "Testing the equality of prediction mean squared errors", IJF 13(2); Newey & West
(1987) for the Bartlett-weighted long-run variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats
from statsmodels.stats.sandwich_covariance import S_hac_simple, weights_bartlett, weights_uniform

Alternative = Literal["two-sided", "less", "greater"]
Kernel = Literal["bartlett", "uniform"]
_KERNEL_WEIGHTS = {"bartlett": weights_bartlett, "uniform": weights_uniform}


@dataclass(frozen=True)
class PTResult:
    """Pesaran–Timmermann test of directional predictability.

    Attributes:
        statistic: the standard-normal PT statistic (NaN when undefined, e.g. a forecaster
            that always predicts the same direction).
        p_value: one-sided p-value of H0 "no directional skill" against "skill" (1 − Φ(S)).
        hit_rate: share of correct directions.
        expected_hit_rate: hit rate expected under independence, P*.
        n: pairs used.
    """

    statistic: float
    p_value: float
    hit_rate: float
    expected_hit_rate: float
    n: int


def pesaran_timmermann(predicted: np.ndarray, actual: np.ndarray) -> PTResult:
    """PT test on the signs of ``predicted`` and ``actual`` (pairs with a zero or NaN dropped).

    With x = 1[actual > 0], y = 1[predicted > 0], P = mean(x = y), P* = py px + (1−py)(1−px),
    V(P) = P*(1−P*)/n, V(P*) = (2py−1)² px(1−px)/n + (2px−1)² py(1−py)/n
    + 4 py px (1−py)(1−px)/n², the statistic is S = (P − P*) / sqrt(V(P) − V(P*)).
    """
    p = np.asarray(predicted, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(a) & (p != 0) & (a != 0)
    n = int(ok.sum())
    if n == 0:
        return PTResult(math.nan, math.nan, math.nan, math.nan, 0)
    x = (a[ok] > 0).astype(np.float64)
    y = (p[ok] > 0).astype(np.float64)
    hit = float((x == y).mean())
    px, py = float(x.mean()), float(y.mean())
    p_star = py * px + (1 - py) * (1 - px)
    var_p = p_star * (1 - p_star) / n
    var_p_star = (
        (2 * py - 1) ** 2 * px * (1 - px) / n
        + (2 * px - 1) ** 2 * py * (1 - py) / n
        + 4 * py * px * (1 - py) * (1 - px) / n**2
    )
    denom = var_p - var_p_star
    if denom <= 0:
        return PTResult(math.nan, math.nan, hit, p_star, n)
    s = (hit - p_star) / math.sqrt(denom)
    return PTResult(s, float(stats.norm.sf(s)), hit, p_star, n)


@dataclass(frozen=True)
class DMResult:
    """Diebold–Mariano test of equal expected loss.

    Attributes:
        statistic: DM statistic (HLN-corrected if requested).
        p_value: p-value for the chosen alternative.
        mean_differential: mean of d = loss_a − loss_b (negative: a is better).
        n: pairs used.
        lag: Newey–West truncation lag of the long-run variance.
        hln: whether the Harvey–Leybourne–Newbold correction (and Student-t, n−1 df) was used.
    """

    statistic: float
    p_value: float
    mean_differential: float
    n: int
    lag: int
    hln: bool


def newey_west_variance(d: np.ndarray, lag: int, kernel: Kernel = "bartlett") -> float:
    """Long-run variance of ``d``: γ0 + 2 Σ_{k=1..lag} w_k γ_k (statsmodels' ``S_hac_simple`` on
    the demeaned series, divided by n; lags beyond n − 1 contribute nothing).

    ``bartlett`` (Newey–West): w_k = 1 − k/(lag+1), never negative. ``uniform`` (the original
    Diebold–Mariano truncated sum): w_k = 1, exact for MA(lag) differentials but it can be
    negative in small samples.
    """
    if kernel not in _KERNEL_WEIGHTS:
        raise ValueError(f"kernel must be bartlett or uniform, got {kernel!r}")
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    lags = max(min(lag, n - 1), 0)
    weights = _KERNEL_WEIGHTS[kernel](lag)[: lags + 1]  # the lag-window weights, cut at n − 1
    s = S_hac_simple(d - d.mean(), nlags=lags, weights_func=lambda _: weights)
    return float(s[0, 0]) / n


def overlap_lag(horizon_minutes: int, stride_bars: int = 1, bar_minutes: int = 5) -> int:
    """HAC lag for overlapping h-step forecasts sampled every ``stride_bars`` bars.

    With stride 1 this is h − 1 in bar steps (h = horizon_minutes / bar_minutes); in general
    it is the number of following decision times whose target window overlaps this one,
    ceil(h / stride) − 1.
    """
    steps = math.ceil(horizon_minutes / bar_minutes)
    return max(math.ceil(steps / stride_bars) - 1, 0)


def diebold_mariano(
    loss_a: np.ndarray,
    loss_b: np.ndarray,
    lag: int,
    hln: bool = True,
    alternative: Alternative = "two-sided",
    kernel: Kernel = "uniform",
) -> DMResult:
    """Diebold–Mariano test on the loss differential d = loss_a − loss_b.

    Args:
        loss_a, loss_b: (N,) losses in time order (e.g. CRPS per decision time); pairs with
            a NaN are dropped.
        lag: Newey–West truncation lag (h − 1 for h-step forecasts at every step; see
            :func:`overlap_lag`).
        hln: apply the Harvey–Leybourne–Newbold small-sample factor
            sqrt((n + 1 − 2h + h(h−1)/n) / n) with h = lag + 1, and use Student-t(n−1).
        alternative: "two-sided"; "less" = a has lower expected loss; "greater" = higher.
        kernel: long-run variance weights (see :func:`newey_west_variance`). ``uniform`` (the
            default, Diebold and Mariano's truncated sum) falls back to ``bartlett`` when its
            estimate is not positive. With lag h − 1 on MA(h−1) differentials the Bartlett
            variance is biased low and the test over-rejects; the uniform one keeps the size
            (tests/test_dm_size.py checks both by Monte Carlo).

    Returns:
        DMResult; statistic 0 and p-value 1 when the losses are identical; NaN when fewer
        than 3 pairs or a zero long-run variance of a non-zero differential.
    """
    if lag < 0:
        raise ValueError(f"lag must be ≥ 0, got {lag}")
    a = np.asarray(loss_a, dtype=np.float64).ravel()
    b = np.asarray(loss_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"loss arrays differ in length: {a.size} vs {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = d.size
    mean_d = float(d.mean()) if n else math.nan
    if n < 3:
        return DMResult(math.nan, math.nan, mean_d, n, lag, hln)
    if not d.any():  # identical losses: no evidence of a difference
        return DMResult(0.0, 1.0, 0.0, n, lag, hln)
    lrv = newey_west_variance(d, lag, kernel)
    if kernel == "uniform" and not lrv > 0:
        lrv = newey_west_variance(d, lag, "bartlett")
    if not lrv > 0:
        return DMResult(math.nan, math.nan, mean_d, n, lag, hln)
    stat = mean_d / math.sqrt(lrv / n)
    if hln:
        h = lag + 1
        factor = (n + 1 - 2 * h + h * (h - 1) / n) / n
        stat *= math.sqrt(max(factor, 0.0))
        dist: stats.rv_continuous | stats.rv_frozen = stats.t(df=n - 1)
    else:
        dist = stats.norm()
    if alternative == "two-sided":
        p = 2.0 * float(dist.sf(abs(stat)))
    elif alternative == "less":
        p = float(dist.cdf(stat))
    elif alternative == "greater":
        p = float(dist.sf(stat))
    else:
        raise ValueError(f"alternative must be two-sided, less or greater, got {alternative!r}")
    return DMResult(float(stat), p, mean_d, n, lag, hln)
