"""Interval coverage where it matters: within volatility terciles, trading sessions and phases of
the hour.

A forecaster whose 90 % intervals cover 90 % overall can still be too narrow when markets are
volatile and too wide when they are calm. This module splits the scored decision times of one
horizon into groups known at the decision time t and measures each central interval's coverage
inside each group:

* volatility terciles: of a baseline's σ forecast at t for that horizon (the evaluation uses the
  seasonal-EWMA baseline; see :func:`volatility_reference`), the two cut points being the 1/3
  and 2/3 quantiles of that σ over the horizon's scored decision times;
* trading sessions: by the UTC hour of t, as defined once in :mod:`forex_diffusion.sessions`
  (re-exported here);
* phases of the hour: the 5-minute slot of t's minute (:data:`PHASES`): the bars that open on
  the full and the half hour carry the scheduled releases, so a forecaster calibrated over the
  hour can be too narrow there.

Each cell carries its count, the binomial standard error √(p(1 − p)/n) at the nominal level p
(the sampling error a calibrated forecaster's coverage in that cell would have if the decision
times were independent; overlapping long horizons make the true error larger) and a flag when
the observed coverage is more than :data:`COVERAGE_TOLERANCE` from nominal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from forex_diffusion.sessions import PHASES, SESSIONS, phase_index, session_index

COVERAGE_TOLERANCE = 0.03
"""A cell's coverage further than this from nominal is flagged."""

TERCILES = ("low", "mid", "high")
"""Names of the volatility terciles, calm to volatile."""

VOLATILITY_REFERENCES = ("ewma_seasonal", "ewma")
"""Baselines whose σ forecast defines the terciles, the first one evaluated is used."""


@dataclass(frozen=True)
class CoverageCell:
    """Coverage of one central interval among the decision times of one group.

    Attributes:
        dimension: "volatility", "session" or "phase".
        cell: the group ("low", "mid", "high"; a session's name; a phase's, ":00" ...).
        level: the interval's nominal coverage.
        n: decision times in the group with a finite interval and outcome.
        coverage: share of them inside the interval (NaN when n = 0).
        se: binomial standard error at the nominal level, √(level (1 − level) / n).
        outside: the coverage is more than the tolerance from nominal.
    """

    dimension: str
    cell: str
    level: float
    n: int
    coverage: float
    se: float
    outside: bool


@dataclass(frozen=True)
class CoverageGroups:
    """The group of each decision time of one horizon.

    Attributes:
        tercile: (N,) index into :data:`TERCILES`, −1 where σ is not finite.
        session: (N,) index into :data:`SESSIONS`.
        phase: (N,) index into :data:`PHASES`.
        cuts: the two σ cut points (low ≤ cuts[0] < mid ≤ cuts[1] < high); NaN without σ.
    """

    tercile: np.ndarray
    session: np.ndarray
    phase: np.ndarray
    cuts: tuple[float, float]


def volatility_terciles(sigma: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Tercile of each σ among the finite ones.

    Args:
        sigma: (N,) σ forecasts (NaN: not scored).

    Returns:
        ((N,) index into :data:`TERCILES`, −1 where σ is NaN; the cut points, the 1/3 and 2/3
        quantiles of the finite σ).
    """
    s = np.asarray(sigma, dtype=np.float64)
    finite = np.isfinite(s)
    out = np.full(s.shape, -1, dtype=np.int64)
    if not finite.any():
        return out, (math.nan, math.nan)
    lo, hi = (float(c) for c in np.quantile(s[finite], [1.0 / 3.0, 2.0 / 3.0]))
    out[finite] = np.where(s[finite] <= lo, 0, np.where(s[finite] <= hi, 1, 2))
    return out, (lo, hi)


def coverage_groups(sigma: np.ndarray, hours: np.ndarray, minutes: np.ndarray) -> CoverageGroups:
    """Terciles of ``sigma`` (N,), sessions of ``hours`` (N,) and phases of ``minutes`` (N,)
    (UTC hour and minute of each decision time) for one horizon."""
    tercile, cuts = volatility_terciles(sigma)
    return CoverageGroups(tercile, session_index(hours), phase_index(minutes), cuts)


def binomial_se(level: float, n: int) -> float:
    """√(level (1 − level) / n); NaN when n = 0."""
    return math.sqrt(level * (1.0 - level) / n) if n > 0 else math.nan


def _cell(
    dimension: str,
    name: str,
    level: float,
    inside: np.ndarray,
    members: np.ndarray,
    tolerance: float,
) -> CoverageCell:
    n = int(members.sum())
    cov = float(inside[members].mean()) if n else math.nan
    outside = bool(n and abs(cov - level) > tolerance)
    return CoverageCell(dimension, name, level, n, cov, binomial_se(level, n), outside)


def conditional_coverage(
    groups: CoverageGroups,
    intervals: Mapping[float, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    tolerance: float = COVERAGE_TOLERANCE,
) -> tuple[CoverageCell, ...]:
    """Coverage of each central interval in each volatility tercile, session and phase.

    Args:
        groups: the decision times' groups (see :func:`coverage_groups`).
        intervals: level → ((N,) lower, (N,) upper) bounds.
        y: (N,) outcomes; NaN (or a NaN bound) leaves a decision time out of every cell.
        tolerance: distance from nominal beyond which a cell is flagged.

    Returns:
        Per level: the three terciles, the sessions, then the phases, in the order of
        :data:`TERCILES`, :data:`SESSIONS` and :data:`PHASES`.
    """
    obs = np.asarray(y, dtype=np.float64)
    cells: list[CoverageCell] = []
    for level, (lower, upper) in intervals.items():
        lo = np.asarray(lower, dtype=np.float64)
        hi = np.asarray(upper, dtype=np.float64)
        ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(obs)
        inside = ok & (obs >= lo) & (obs <= hi)
        for i, name in enumerate(TERCILES):
            cells.append(
                _cell("volatility", name, level, inside, ok & (groups.tercile == i), tolerance)
            )
        for i, s in enumerate(SESSIONS):
            cells.append(
                _cell("session", s.name, level, inside, ok & (groups.session == i), tolerance)
            )
        for i, name in enumerate(PHASES):
            cells.append(_cell("phase", name, level, inside, ok & (groups.phase == i), tolerance))
    return tuple(cells)


def volatility_reference(baselines: Sequence[str]) -> str:
    """The baseline whose σ forecast at t defines the terciles: the seasonal EWMA when
    evaluated, else the EWMA, else the first baseline."""
    return next((b for b in VOLATILITY_REFERENCES if b in baselines), baselines[0])


@dataclass(frozen=True)
class CoverageConditioning:
    """How the decision times were grouped, for the report and metrics.json.

    Attributes:
        sigma_source: the baseline whose σ forecast at t defines the terciles.
        tolerance: the flagging distance from nominal.
        sessions: name → [start hour, end hour) UTC.
        cuts: horizon → the two σ cut points (log-return units).
    """

    sigma_source: str
    tolerance: float
    sessions: dict[str, tuple[int, int]]
    cuts: dict[int, tuple[float, float]]


def conditioning(
    sigma_source: str, cuts: Mapping[int, tuple[float, float]]
) -> CoverageConditioning:
    """The :class:`CoverageConditioning` of an evaluation with these cut points."""
    return CoverageConditioning(
        sigma_source,
        COVERAGE_TOLERANCE,
        {s.name: (s.start_hour, s.end_hour) for s in SESSIONS},
        dict(cuts),
    )
