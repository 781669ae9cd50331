"""Adaptive conformal inference (Gibbs & Candès 2021) for central intervals, online.

For each horizon and nominal coverage 1 − α the running level α_t is updated after each outcome:
α_{t+1} = α_t + γ·w_t·(α − err_t), err_t = 1 if the outcome fell outside the interval issued at
level α_t. The interval is the forecast's central (1 − α_t) interval: its α_t/2 and 1 − α_t/2
quantiles; α_t ≤ 0 issues the whole real line and α_t ≥ 1 an empty interval. Over outcomes of
total weight W = Σ w_t the weighted miscoverage Σ w_t·err_t / W is within
(max(α_1, 1 − α_1) + γ)/(γW) of α, whatever the data do.

The weight w_t = min(1, Δ_t / h) is the share of the forecast's h-minute target window that the
previously resolved forecast of the same horizon (Δ_t minutes earlier) did not already cover.
Forecasts issued every 5 minutes for 240 minutes ahead share most of their outcome: without the
weight, one volatile afternoon would count 48 times and swing the levels 48 times as far as
forecasts issued every 4 hours; with it the levels move at the same pace per hour whatever the
cadence (the live service forecasts on every 5m bar, an evaluation every ``stride`` bars).

:func:`adaptive_conformal_samples` runs it over a sequence of sample forecasts of one horizon and
issues whole distributions, not only intervals: the running levels of every coverage define a
monotone level map (the c-interval of the issued forecast is the model's central (1 − α_c)
interval), applied to the samples rank by rank like the fitted recalibration map
(``quantile_map.remap_sample_levels``), so CRPS, PIT and every summary of the adapted forecast
are defined. An outcome y_j updates the levels once it is known: at the first decision time at or
after t_j + h.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from forex_diffusion.calibration.quantile_map import rank_levels, remap_and_quantiles
from forex_diffusion.sessions import phase_of, session_of
from forex_diffusion.timeframe_units import NS_PER_MIN

#: quantile(levels) -> values of one forecast at those levels
QuantileFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class AdaptiveConformal:
    """Running ACI levels per (horizon, nominal coverage).

    Attributes:
        coverages: nominal central coverages, e.g. (0.5, 0.8, 0.9, 0.95).
        gamma: step size γ.
        alpha: current α_t per (horizon, coverage).
        resolved_ns: per horizon, the decision time (ns) of the latest forecast whose outcome
            moved the levels (for the overlap weight).
    """

    coverages: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    gamma: float = 0.005
    alpha: dict[tuple[int, float], float] = field(default_factory=dict)
    resolved_ns: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.gamma < 1:
            raise ValueError(f"gamma must be in (0, 1), got {self.gamma}")
        for c in self.coverages:
            if not 0 < c < 1:
                raise ValueError(f"coverage must be in (0, 1), got {c}")

    def level(self, horizon: int, coverage: float) -> float:
        """Current α_t (starts at the nominal 1 − coverage)."""
        return self.alpha.get((int(horizon), coverage), 1.0 - coverage)

    def interval(self, horizon: int, coverage: float, quantile: QuantileFn) -> tuple[float, float]:
        """The interval to issue now for this horizon and coverage."""
        a = self.level(horizon, coverage)
        if a <= 0:
            return -np.inf, np.inf
        if a >= 1:
            return np.inf, -np.inf  # empty: every outcome falls outside
        lo, hi = quantile(np.array([a / 2, 1 - a / 2]))
        return float(lo), float(hi)

    def update(
        self, horizon: int, coverage: float, lo: float, hi: float, y: float, weight: float = 1.0
    ) -> bool:
        """Record the outcome ``y`` of the interval (lo, hi) with weight w (the step is γ·w);
        returns whether it was covered."""
        covered = bool(lo <= y <= hi)
        a = self.level(horizon, coverage)
        self.alpha[(int(horizon), coverage)] = a + self.gamma * weight * (
            (1 - coverage) - (0.0 if covered else 1.0)
        )
        return covered

    def overlap_weight(self, horizon: int, decision_ns: int) -> float:
        """w = min(1, Δ/h) for the outcome of the forecast made at ``decision_ns``, Δ the time
        since the latest forecast of this horizon whose outcome was recorded (1 for the first;
        0 for one not after it), and record it as the latest."""
        h = int(horizon)
        last = self.resolved_ns.get(h)
        self.resolved_ns[h] = decision_ns if last is None else max(last, decision_ns)
        if last is None:
            return 1.0
        return min(max((decision_ns - last) / (h * NS_PER_MIN), 0.0), 1.0)

    def run(
        self,
        horizon: int,
        coverage: float,
        quantiles: Sequence[QuantileFn],
        outcomes: np.ndarray,
        delay: int = 1,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Issue and score a sequence of forecasts in time order, each outcome with weight 1
        (no decision times here; :class:`OnlineConformal` weighs overlapping outcomes).

        Args:
            quantiles: one quantile function per forecast.
            outcomes: (T,) realised values.
            delay: number of forecasts issued before an outcome is known (1 = known before the
                next forecast; an h-minute target forecast every ``stride`` minutes is known
                ceil(h / stride) forecasts later). Outcomes update α only once known.

        Returns:
            (lo, hi, covered), each (T,).
        """
        if delay < 1:
            raise ValueError(f"delay must be >= 1, got {delay}")
        t = len(outcomes)
        lo, hi, cov = np.empty(t), np.empty(t), np.zeros(t, dtype=bool)
        for i, q in enumerate(quantiles):
            j = i - delay  # the forecast whose outcome has just become known
            if j >= 0:
                cov[j] = self.update(horizon, coverage, lo[j], hi[j], float(outcomes[j]))
            lo[i], hi[i] = self.interval(horizon, coverage, q)
        for j in range(max(t - delay, 0), t):
            cov[j] = bool(lo[j] <= outcomes[j] <= hi[j])
        return lo, hi, cov


def central_level_map(alphas: Mapping[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Knots (τ, u) of the level map that issues the model's central (1 − α_c) interval as the
    c-interval of every coverage c: (1 − c)/2 ↦ α_c/2, (1 + c)/2 ↦ 1 − α_c/2, 0.5 ↦ 0.5, 0 ↦ 0
    and 1 ↦ 1. α_c is clipped to [0, 1] (0: the whole line, up to the Gaussian tails at the
    extreme levels; 1: a point at the median) and u made non-decreasing, so the map never
    crosses quantiles when the levels of two coverages cross.

    Args:
        alphas: coverage c → running α_c.

    Returns:
        tau (2C + 3,) increasing and u (2C + 3,) non-decreasing, both in [0, 1].
    """
    cs = sorted(alphas, reverse=True)  # the widest interval first: the lowest τ
    a = {c: min(max(float(alphas[c]), 0.0), 1.0) for c in cs}
    tau = [0.0, *((1 - c) / 2 for c in cs), 0.5, *((1 + c) / 2 for c in reversed(cs)), 1.0]
    u = [0.0, *(a[c] / 2 for c in cs), 0.5, *(1 - a[c] / 2 for c in reversed(cs)), 1.0]
    return np.asarray(tau), np.maximum.accumulate(np.asarray(u))


@dataclass
class OnlineConformal:
    """Adaptive conformal over forecasts issued one decision time at a time: ``issue`` adapts a
    forecast's samples with the current levels and keeps the intervals it issued; ``resolve``
    scores one of them on its outcome once known and moves the levels. The live service holds
    one per asset; :func:`adaptive_conformal_samples` replays a range through one.

    Attributes:
        aci: the running levels (per horizon and coverage); with ``by_session`` or
            ``by_phase`` the template of one set of levels per cell of the decision time (its
            trading session, its 5-minute slot of the hour, or both: ``forex_diffusion.sessions``),
            each moved only by its cell's outcomes.
        by_session: keep levels per session.
        by_phase: keep levels per phase of the hour (crossed with the session when both).
        issued: (decision time ns, horizon) → the issued (lo, hi) per coverage, (C, 2), until
            resolved.
        outcomes: outcomes that have moved the levels.
    """

    aci: AdaptiveConformal
    by_session: bool = False
    issued: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    outcomes: int = 0
    cells: dict[tuple[int, int], AdaptiveConformal] = field(default_factory=dict)
    by_phase: bool = False

    def _running(self, decision_ns: int) -> AdaptiveConformal:
        if not (self.by_session or self.by_phase):
            return self.aci
        k = (
            session_of(decision_ns) if self.by_session else -1,
            phase_of(decision_ns) if self.by_phase else -1,
        )
        if k not in self.cells:
            self.cells[k] = AdaptiveConformal(self.aci.coverages, self.aci.gamma)
        return self.cells[k]

    def levels(self, decision_ns: int, horizon: int) -> np.ndarray:
        """(C,) current α per coverage of ``aci.coverages`` for a forecast made at
        ``decision_ns`` (its cell's, with ``by_session`` or ``by_phase``)."""
        running = self._running(decision_ns)
        return np.array([running.level(horizon, c) for c in self.aci.coverages])

    def issue(self, decision_ns: int, horizons: Sequence[int], samples: np.ndarray) -> np.ndarray:
        """The samples (H, S) of one forecast, a row per horizon of ``horizons``, under the
        current levels (the map of :func:`central_level_map`, rank by rank; one pass over all
        rows). Its intervals, the model's central (1 − α_c) intervals (the adapted forecast's
        c-intervals up to the interpolation between samples), are kept for ``resolve``."""
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != len(horizons):
            raise ValueError(f"samples (H={len(horizons)}, S) expected, got {x.shape}")
        cov = self.aci.coverages
        ranks = rank_levels(x.shape[-1])
        maps, ends = np.empty_like(x), np.empty((len(horizons), 2 * len(cov)))
        for j, h in enumerate(horizons):
            alphas = self.levels(decision_ns, h)
            tau, u = central_level_map(dict(zip(cov, alphas, strict=True)))
            maps[j] = np.interp(ranks, tau, u)
            a = np.clip(alphas, 0.0, 1.0)
            ends[j] = np.stack([a / 2, 1 - a / 2], axis=1).ravel()  # lo, hi per coverage
        out, intervals = remap_and_quantiles(x, maps, ends)
        for j, h in enumerate(horizons):
            self.issued[(int(decision_ns), int(h))] = intervals[j].reshape(len(cov), 2)
        return out

    def resolve(self, decision_ns: int, horizon: int, y: float) -> bool:
        """Score the forecast issued at ``decision_ns`` for ``horizon`` on its outcome ``y``
        and move the levels by γ times its overlap weight (``AdaptiveConformal.overlap_weight``;
        NaN: no outcome, it is only forgotten); False when there is no such forecast."""
        intervals = self.issued.pop((int(decision_ns), int(horizon)), None)
        if intervals is None:
            return False
        if np.isfinite(y):
            running = self._running(decision_ns)
            w = running.overlap_weight(horizon, int(decision_ns))
            for c, (lo, hi) in zip(self.aci.coverages, intervals, strict=True):
                running.update(horizon, c, float(lo), float(hi), float(y), w)
            self.outcomes += 1
        return True


def adaptive_conformal_samples(
    samples: np.ndarray,
    y: np.ndarray,
    times_ns: np.ndarray,
    horizon: int,
    aci: AdaptiveConformal,
    by_session: bool = False,
    by_phase: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Issue a sequence of forecasts of one horizon through adaptive conformal, online.

    Forecast i is issued with the levels known at its decision time: every earlier forecast j
    whose outcome was known by then (t_j + h ≤ t_i) has updated them, scored on the interval
    actually issued for j (:class:`OnlineConformal`). ``aci`` carries the state in and out, so
    a later call continues.

    Args:
        samples: (N, S) forecasts in decision-time order.
        y: (N,) outcomes (NaN: never known, no update).
        times_ns: (N,) decision times, int64 ns, non-decreasing.
        horizon: minutes.
        aci: the running levels (per horizon and coverage).
        by_session: one set of levels per trading session of the decision time (``aci`` is
            then only their template).
        by_phase: one set per 5-minute slot of the hour of the decision time (per session and
            slot with ``by_session``).

    Returns:
        adapted samples (N, S) and the levels α each forecast was issued with, (N, C) in the
        order of ``aci.coverages``.
    """
    x = np.asarray(samples, dtype=np.float64)
    t = np.asarray(times_ns, dtype=np.int64)
    n = x.shape[0]
    if x.ndim != 2 or np.shape(y) != (n,) or t.shape != (n,):
        raise ValueError(
            f"samples (N, S), y (N,) and times (N,) expected, got {x.shape}, "
            f"{np.shape(y)}, {t.shape}"
        )
    if np.any(np.diff(t) < 0):
        raise ValueError("decision times must be in time order")
    online = OnlineConformal(aci, by_session, by_phase=by_phase)
    out = np.empty_like(x)
    used = np.empty((n, len(aci.coverages)))
    ahead = np.int64(horizon) * NS_PER_MIN
    known = 0  # forecasts before this index have been resolved
    for i in range(n):
        while known < i and t[known] + ahead <= t[i]:
            online.resolve(t[known], horizon, float(y[known]))
            known += 1
        used[i] = online.levels(t[i], horizon)
        out[i] = online.issue(t[i], [horizon], x[i : i + 1])[0]
    return out, used
