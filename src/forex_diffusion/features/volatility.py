"""Causal volatility estimators of 5m log returns: EWMA and seasonal EWMA.

The one implementation used by the evaluation's baselines (``evaluation.baselines``), by the
seasonal-EWMA target scale (``data.target_scale: seasonal_ewma``) and by the hour-of-week slot
scale feature (``features.time_of_week``).

A 5m return is log(close_i / close_{i-1}) for two bars exactly 5 minutes apart; returns across
a gap (weekend, missing bars) are not 5m returns and are left out. A forecast for a decision
time t uses only the returns of bars that closed at or before t; the parameters (λ, seasonal
factors) come from a fit on the training range only.

Seasonal EWMA: the EWMA runs on returns divided by a (weekday, intraday-slot) volatility factor
estimated on the training range; the variance of the next m 5m returns after t is the EWMA
state at t times the sum of the squared factors of the m future slots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forex_diffusion.errors import CheckpointError, DataError
from forex_diffusion.timeframes import NS_PER_MIN

BAR_NS = 5 * NS_PER_MIN
VAR_FLOOR_RATIO = 1e-4  # variances are floored at this share of the training variance
TUNE_BURN_IN = 288  # one-step forecasts skipped at the start of λ tuning (1 day of 5m bars)
_WEEK_BARS = 7 * 1440 // 5  # 5m bars in a week: the seasonal factors repeat with this period


# --------------------------------------------------------------------------- returns


@dataclass(frozen=True)
class FiveMinuteReturns:
    """Contiguous 5m log returns of a bar series.

    Attributes:
        close_ns: (B,) bar close times (label + 5 min) in ns since the epoch, increasing.
        returns: (K,) log returns between bars exactly 5 minutes apart, in time order.
        label_ns: (K,) open time (label) of the bar each return ends with.
        known: (B + 1,) known[b] = number of returns known once the first b bars have closed.
    """

    close_ns: np.ndarray
    returns: np.ndarray
    label_ns: np.ndarray
    known: np.ndarray

    def known_at(self, times: pd.DatetimeIndex) -> np.ndarray:
        """(N,) number of returns whose bar closed at or before each time."""
        return self.known_at_ns(utc_ns(times))

    def known_at_ns(self, times_ns: np.ndarray) -> np.ndarray:
        """(N,) number of returns whose bar closed at or before each time (ns since the epoch)."""
        bars = np.searchsorted(self.close_ns, np.asarray(times_ns, dtype=np.int64), side="right")
        return self.known[bars]


def utc_ns(times: pd.DatetimeIndex) -> np.ndarray:
    """(N,) int64 ns since the epoch of tz-aware times."""
    idx = pd.DatetimeIndex(times)
    if idx.tz is None:
        raise ValueError("decision times must be tz-aware (UTC)")
    return idx.tz_convert("UTC").as_unit("ns").asi8


def five_minute_returns(
    bars: pd.DataFrame | pd.Series, where: str = "5m bars"
) -> FiveMinuteReturns:
    """Contiguous 5m log returns of 5m bars (a frame with ``close`` or a close Series)."""
    closes = bars["close"] if isinstance(bars, pd.DataFrame) else bars
    if not isinstance(closes.index, pd.DatetimeIndex) or closes.index.tz is None:
        raise DataError(f"{where}: expected a UTC DatetimeIndex of 5m bar open times")
    labels = closes.index.tz_convert("UTC").as_unit("ns").asi8
    return returns_of_bars(labels, closes.to_numpy(dtype=np.float64), where)


def returns_of_bars(
    labels: np.ndarray, close: np.ndarray, where: str = "5m bars"
) -> FiveMinuteReturns:
    """Contiguous 5m log returns of 5m bars given as open times (ns) and closes, both (B,)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (np.diff(labels) <= 0).any():
        raise DataError(f"{where}: bar times must be strictly increasing")
    if len(labels) and (labels % BAR_NS).any():
        bad = pd.Timestamp(int(labels[np.flatnonzero(labels % BAR_NS)[0]]), tz="UTC")
        raise DataError(f"{where}: bar at {bad} is not on the 5-minute grid; pass 5m bars")
    values = np.asarray(close, dtype=np.float64)
    if not np.isfinite(values).all() or (values <= 0).any():
        raise DataError(f"{where}: closes must be finite and positive")
    contiguous = np.diff(labels) == BAR_NS
    returns = np.diff(np.log(values))[contiguous]
    label_ns = labels[1:][contiguous]
    known = np.concatenate([[0, 0], np.cumsum(contiguous)]) if len(labels) else np.zeros(1, int)
    return FiveMinuteReturns(labels + BAR_NS, returns, label_ns, known.astype(np.int64))


# --------------------------------------------------------------------------- EWMA


# Below this many returns the EWMA recursion runs in Python: a forecast's window is short, and
# importing scipy.signal (which pulls scipy.stats in) costs far more than the loop.
_PY_EWMA_MAX = 50_000


def ewma_states(x2: np.ndarray, lam: float, init: float) -> np.ndarray:
    """EWMA variance states: s_0 = init, s_{j+1} = λ s_j + (1 − λ) x2_j.

    Long series run through ``scipy.signal.lfilter``, short ones through the same recursion
    in Python with lfilter's operation order (transposed direct form II), so both give the
    same bits.

    Args:
        x2: (K,) squared returns in time order.

    Returns:
        (K + 1,) s, where s_j is the one-step variance forecast made after j returns.
    """
    if x2.size == 0:
        return np.array([init])
    if x2.size <= _PY_EWMA_MAX:
        return np.array([init, *_ewma_recursion(x2.tolist(), lam, lam * init)])
    from scipy.signal import lfilter  # imported here: scipy.signal is slow to import

    y, _ = lfilter([1.0 - lam], [1.0, -lam], x2, zi=[lam * init])
    return np.concatenate([[init], y])


def _ewma_recursion(x2: list[float], lam: float, z: float) -> list[float]:
    """lfilter([1 − λ], [1, −λ], x2, zi=[z]) step by step: y_j = z + (1 − λ) x2_j, then the
    delay z = 0·x2_j − (−λ) y_j, as lfilter's filter with its numerator padded to the
    denominator's length computes them."""
    b0, b1, a1 = 1.0 - lam, 0.0, -lam
    out = []
    for x in x2:
        y = z + b0 * x
        out.append(y)
        z = x * b1 - y * a1
    return out


def tune_ewma_lambda(
    returns: np.ndarray,
    lambdas: tuple[float, ...] | list[float],
    objective: str = "loglik",
    factor2: np.ndarray | None = None,
    burn_in: int = TUNE_BURN_IN,
) -> tuple[float, dict[float, float]]:
    """Pick the λ whose one-step forecasts of ``returns`` score best.

    Args:
        returns: (K,) 5m returns (training range).
        lambdas: candidate decay factors in (0, 1).
        objective: "loglik" (maximise the mean Gaussian log-likelihood) or "crps"
            (minimise the mean Gaussian CRPS).
        factor2: optional (K,) squared seasonal factors; the EWMA then runs on
            returns / factor and the forecast variance of return j is s_j · factor2_j.
        burn_in: one-step forecasts skipped at the start.

    Returns:
        (best λ, {λ: score}) where score is the mean log-likelihood or the mean CRPS.
    """
    if objective not in ("loglik", "crps"):
        raise ValueError(f"objective must be loglik or crps, got {objective!r}")
    f2 = np.ones_like(returns) if factor2 is None else factor2
    u2 = returns**2 / f2
    init = float(u2[:burn_in].mean())
    floor = VAR_FLOOR_RATIO * float((returns**2).mean())
    r = returns[burn_in:]
    scores: dict[float, float] = {}
    if objective == "crps":
        from scoringrules import crps_normal  # imported here: forecasting needs no scoring

    for lam in lambdas:
        var = np.maximum(ewma_states(u2, float(lam), init)[:-1] * f2, floor)[burn_in:]
        if objective == "loglik":
            scores[float(lam)] = float(np.mean(-0.5 * (np.log(2 * np.pi * var) + r * r / var)))
        else:
            crps = crps_normal(r, 0.0, np.sqrt(var), backend="numpy")
            scores[float(lam)] = float(np.mean(np.asarray(crps)))
    pick = max if objective == "loglik" else min
    best = pick(scores, key=lambda lam: scores[lam])
    return best, scores


# --------------------------------------------------------------------------- seasonality


def weekday_slot(label_ns: np.ndarray, slot_minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weekday, Monday = 0; intraday slot) of bars opening at ``label_ns``, same shape."""
    minutes = label_ns // NS_PER_MIN
    weekday = (minutes // 1440 + 3) % 7  # 1970-01-01 was a Thursday
    return weekday, (minutes % 1440) // slot_minutes


@dataclass(frozen=True)
class SeasonalFactors:
    """Squared volatility factors per (weekday, intraday slot), mean 1 over the training returns.

    Attributes:
        slot_minutes: slot length (divides 1440).
        factor2: (7, 1440 / slot_minutes) squared factors, Monday = 0.
    """

    slot_minutes: int
    factor2: np.ndarray

    def at(self, label_ns: np.ndarray) -> np.ndarray:
        """Squared factors for bars opening at ``label_ns`` (ns since the epoch, any shape)."""
        return self.factor2[weekday_slot(label_ns, self.slot_minutes)]

    def cumulative(self, steps: np.ndarray) -> np.ndarray:
        """(week bars, max steps) table: row p, column m-1 = sum of the squared factors of the m
        5m bars opening at p, p+1, ..., p+m-1 (p = the bar's position in the week, in 5m bars
        since the epoch modulo one week)."""
        m_max = int(np.max(steps))
        pos = np.arange(_WEEK_BARS, dtype=np.int64)[:, None] + np.arange(m_max)[None, :]
        return np.cumsum(self.at(pos * BAR_NS), axis=1)


def estimate_seasonal_factors(
    returns: np.ndarray, label_ns: np.ndarray, slot_minutes: int, prior_count: float
) -> SeasonalFactors:
    """(weekday, slot) variance factors from training returns, shrunk towards pooled values.

    Each slot's variance (pooled over weekdays) is shrunk to the overall variance, and each
    (weekday, slot) cell to its slot's, with ``prior_count`` pseudo-observations; cells never
    seen take their slot's value. Factors are then normalised so their mean over the
    training returns is 1.
    """
    n_slots = 1440 // slot_minutes
    weekday, slot = weekday_slot(label_ns, slot_minutes)
    r2 = returns**2
    overall = float(r2.mean())
    slot_sum = np.bincount(slot, weights=r2, minlength=n_slots)
    slot_n = np.bincount(slot, minlength=n_slots)
    slot_var = (slot_sum + prior_count * overall) / np.maximum(slot_n + prior_count, 1e-12)
    slot_var = np.where(slot_n + prior_count > 0, slot_var, overall)
    cell = weekday * n_slots + slot
    cell_sum = np.bincount(cell, weights=r2, minlength=7 * n_slots).reshape(7, n_slots)
    cell_n = np.bincount(cell, minlength=7 * n_slots).reshape(7, n_slots)
    denom = cell_n + prior_count
    cell_var = np.where(
        denom > 0, (cell_sum + prior_count * slot_var) / np.maximum(denom, 1e-12), slot_var
    )
    floor = VAR_FLOOR_RATIO * overall
    factor2 = np.maximum(cell_var, floor) / overall
    norm = float(factor2[weekday, slot].mean())
    return SeasonalFactors(slot_minutes, factor2 / norm)


# --------------------------------------------------------------------------- seasonal EWMA


SEASONAL_EWMA_FORMAT = "forex_diffusion.seasonal_ewma"


@dataclass(frozen=True)
class SeasonalEwma:
    """A seasonal-EWMA volatility model fitted on training returns.

    Attributes:
        factors: the (weekday, slot) squared factors.
        lam: EWMA decay λ (tuned on the training returns).
        init_u2: initial EWMA state: the mean deseasonalised squared training return.
        train_var: mean squared training return (the variance floor is a share of it).
        scores: {λ: tuning score} of the candidates.
    """

    factors: SeasonalFactors
    lam: float
    init_u2: float
    train_var: float
    scores: Mapping[float, float]

    @classmethod
    def fit(
        cls,
        returns: np.ndarray,
        label_ns: np.ndarray,
        lambdas: Sequence[float],
        objective: str = "loglik",
        slot_minutes: int = 60,
        prior_count: float = 20.0,
    ) -> SeasonalEwma:
        """Factors, initial state and λ from (K,) training returns ending at bars ``label_ns``."""
        factors = estimate_seasonal_factors(returns, label_ns, slot_minutes, prior_count)
        factor2 = factors.at(label_ns)
        init_u2 = float(np.mean(returns**2 / factor2))
        lam, scores = tune_ewma_lambda(returns, tuple(lambdas), objective, factor2=factor2)
        return cls(factors, float(lam), init_u2, float(np.mean(returns * returns)), scores)

    def horizon_variance(
        self, rs: FiveMinuteReturns, times_ns: np.ndarray, steps: np.ndarray
    ) -> np.ndarray:
        """(N, H) variance of the sum of the next ``steps`` (H,) 5m returns after each of the
        (N,) times (ns), from the returns of bars closed by then (no floor applied)."""
        u2 = rs.returns**2 / self.factors.at(rs.label_ns)
        states = ewma_states(u2, self.lam, self.init_u2)
        base = states[rs.known_at_ns(times_ns)]
        # future bars open at t, t+5, ..., t+5(m-1) minutes
        cum = self.factors.cumulative(steps)
        pos = (np.asarray(times_ns, dtype=np.int64) // BAR_NS) % _WEEK_BARS
        return base[:, None] * cum[pos][:, np.asarray(steps) - 1]

    def horizon_std(
        self, rs: FiveMinuteReturns, times_ns: np.ndarray, steps: np.ndarray
    ) -> np.ndarray:
        """(N, H) standard deviations: :meth:`horizon_variance` floored at
        ``VAR_FLOOR_RATIO`` × the training variance, as the baseline's forecasts."""
        var = self.horizon_variance(rs, times_ns, steps)
        return np.sqrt(np.maximum(var, VAR_FLOOR_RATIO * self.train_var))

    def log_slot_scale(self, label_ns: np.ndarray) -> np.ndarray:
        """½ log of the squared factor of the bars opening at ``label_ns``: log s(k)."""
        return 0.5 * np.log(self.factors.at(np.asarray(label_ns, dtype=np.int64)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (exact float round trip)."""
        return {
            "format": SEASONAL_EWMA_FORMAT,
            "slot_minutes": int(self.factors.slot_minutes),
            "factor2": self.factors.factor2.tolist(),
            "lambda": self.lam,
            "init_u2": self.init_u2,
            "train_var": self.train_var,
            "scores": [[float(k), float(v)] for k, v in self.scores.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "seasonal EWMA") -> SeasonalEwma:
        """Rebuild from :meth:`to_dict` output. Raises CheckpointError if malformed."""
        if not isinstance(data, Mapping) or data.get("format") != SEASONAL_EWMA_FORMAT:
            raise CheckpointError(f"{where}: not a forex_diffusion seasonal EWMA fit")
        try:
            slot = int(data["slot_minutes"])
            factor2 = np.asarray(data["factor2"], dtype=np.float64)
            if factor2.shape != (7, 1440 // slot) or not (factor2 > 0).all():
                raise ValueError(f"factor2 of shape {factor2.shape} for {slot}-minute slots")
            return cls(
                SeasonalFactors(slot, factor2),
                float(data["lambda"]),
                float(data["init_u2"]),
                float(data["train_var"]),
                {float(k): float(v) for k, v in data["scores"]},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: malformed seasonal EWMA fit: {exc}") from None
