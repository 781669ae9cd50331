"""Adaptive conformal inference (Gibbs & Candès 2021) for central intervals, online.

For each horizon and nominal coverage 1 − α the running level α_t is updated after each outcome:
α_{t+1} = α_t + γ·(α − err_t), err_t = 1 if the outcome fell outside the interval issued at
level α_t. The interval is the forecast's central (1 − α_t) interval: its α_t/2 and 1 − α_t/2
quantiles; α_t ≤ 0 issues the whole real line and α_t ≥ 1 an empty interval. Over any T
outcomes the miscoverage is within (max(α_1, 1 − α_1) + γ)/(γT) of α, whatever the data do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: quantile(levels) -> values of one forecast at those levels
QuantileFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class AdaptiveConformal:
    """Running ACI levels per (horizon, nominal coverage).

    Attributes:
        coverages: nominal central coverages, e.g. (0.5, 0.8, 0.9, 0.95).
        gamma: step size γ.
        alpha: current α_t per (horizon, coverage).
    """

    coverages: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    gamma: float = 0.005
    alpha: dict[tuple[int, float], float] = field(default_factory=dict)

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

    def update(self, horizon: int, coverage: float, lo: float, hi: float, y: float) -> bool:
        """Record the outcome ``y`` of the interval (lo, hi); returns whether it was covered."""
        covered = bool(lo <= y <= hi)
        a = self.level(horizon, coverage)
        self.alpha[(int(horizon), coverage)] = a + self.gamma * (
            (1 - coverage) - (0.0 if covered else 1.0)
        )
        return covered

    def run(
        self,
        horizon: int,
        coverage: float,
        quantiles: Sequence[QuantileFn],
        outcomes: np.ndarray,
        delay: int = 1,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Issue and score a sequence of forecasts in time order.

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
