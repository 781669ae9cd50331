"""Honest baseline forecasters (SPEC §7): scored in the evaluation, served by the fallback policy.

All four are zero-mean (random walk) Gaussian forecasts of the h-minute log return whose
variance comes from 5m log returns known at the decision time t:

* ``rolling``: mean of squared 5m returns over the last W returns, × h/5;
* ``ewma``: RiskMetrics-style EWMA of squared 5m returns, λ tuned on the training range, × h/5;
* ``ewma_seasonal``: the same on returns divided by a (weekday, intraday-slot) volatility
  factor estimated on the training range, re-seasonalised by summing the squared factors of
  the h/5 future slots;
* ``garch``: GARCH(1,1) (``arch`` package, zero mean, normal or Student-t innovations), refitted
  on a rolling window every K decision times; between refits the conditional variance is
  filtered forward with fixed parameters; the multi-step variances are summed over h/5 steps.

A 5m return is log(close_i / close_{i-1}) for two bars exactly 5 minutes apart; returns across
a gap (weekend, missing bars) are not 5m returns and are left out. Each forecast for t uses
only bars that closed at or before t; parameters come from ``fit`` (training range only) or,
for GARCH, from fits on returns known at the refit's decision time.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np
import pandas as pd
from arch import arch_model
from loguru import logger
from scipy.signal import lfilter

from forex_diffusion.config.sssd_config import EvaluationConfig
from forex_diffusion.errors import DataError
from forex_diffusion.models.distribution import ForecastDistribution, crps_gaussian
from forex_diffusion.timeframes import NS_PER_MIN

_BAR_NS = 5 * NS_PER_MIN
_VAR_FLOOR_RATIO = 1e-4  # variances are floored at this share of the training variance
_TUNE_BURN_IN = 288  # one-step forecasts skipped at the start of λ tuning (1 day of 5m bars)
_MIN_GARCH_FIT = 250  # fewer known returns than this: use the training-range GARCH fit


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
        bars = np.searchsorted(self.close_ns, _utc_ns(times), side="right")
        return self.known[bars]


def five_minute_returns(
    bars: pd.DataFrame | pd.Series, where: str = "5m bars"
) -> FiveMinuteReturns:
    """Contiguous 5m log returns of 5m bars (a frame with ``close`` or a close Series)."""
    closes = bars["close"] if isinstance(bars, pd.DataFrame) else bars
    if not isinstance(closes.index, pd.DatetimeIndex) or closes.index.tz is None:
        raise DataError(f"{where}: expected a UTC DatetimeIndex of 5m bar open times")
    labels = closes.index.tz_convert("UTC").as_unit("ns").asi8
    if len(labels) and (np.diff(labels) <= 0).any():
        raise DataError(f"{where}: bar times must be strictly increasing")
    if len(labels) and (labels % _BAR_NS).any():
        bad = closes.index[np.flatnonzero(labels % _BAR_NS)[0]]
        raise DataError(f"{where}: bar at {bad} is not on the 5-minute grid; pass 5m bars")
    values = closes.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all() or (values <= 0).any():
        raise DataError(f"{where}: closes must be finite and positive")
    contiguous = np.diff(labels) == _BAR_NS
    returns = np.diff(np.log(values))[contiguous]
    label_ns = labels[1:][contiguous]
    known = np.concatenate([[0, 0], np.cumsum(contiguous)]) if len(labels) else np.zeros(1, int)
    return FiveMinuteReturns(labels + _BAR_NS, returns, label_ns, known.astype(np.int64))


def _utc_ns(times: pd.DatetimeIndex) -> np.ndarray:
    idx = pd.DatetimeIndex(times)
    if idx.tz is None:
        raise ValueError("decision times must be tz-aware (UTC)")
    return idx.tz_convert("UTC").as_unit("ns").asi8


def _steps(horizons: tuple[int, ...]) -> np.ndarray:
    steps = np.asarray(horizons, dtype=np.int64)
    if (steps <= 0).any() or (steps % 5).any():
        raise ValueError(f"horizons must be positive multiples of 5 minutes, got {horizons}")
    return steps // 5


# --------------------------------------------------------------------------- base


class Baseline(ABC):
    """A zero-mean Gaussian forecaster of h-minute log returns from past 5m returns."""

    name: str = "baseline"
    label: str = "baseline"

    def __init__(self) -> None:
        self.train_var_: float | None = None

    def fit(self, train_closes: pd.Series | pd.DataFrame) -> Self:
        """Estimate what the baseline needs from the training range only (5m bars)."""
        rs = five_minute_returns(train_closes, where=f"{self.name} training bars")
        r = rs.returns
        if r.size < 2 * _TUNE_BURN_IN:
            raise DataError(
                f"{self.name}: only {r.size} contiguous 5m returns in the training range; "
                f"need at least {2 * _TUNE_BURN_IN} (pass a longer training range)"
            )
        self.train_var_ = float(np.mean(r * r))
        if self.train_var_ <= 0:
            raise DataError(f"{self.name}: the training range has no price movement")
        self._fit(r, rs.label_ns)
        return self

    def _fit(self, returns: np.ndarray, label_ns: np.ndarray) -> None:  # noqa: B027
        """Hook for subclasses (tuning); ``returns`` are the training 5m returns."""

    def forecast(
        self,
        bars_5m: pd.DataFrame | pd.Series,
        decision_times: pd.DatetimeIndex,
        horizons: tuple[int, ...] | list[int],
    ) -> ForecastDistribution:
        """Gaussian forecasts for N decision times × H horizons using bars closed by each t.

        Args:
            bars_5m: 5m bars (open-time index) covering the history before the decision
                times; bars after a decision time are never used for it.
            decision_times: (N,) UTC times.
            horizons: (H,) minutes, multiples of 5.

        Returns:
            ForecastDistribution (gaussian, loc 0); rows are NaN where history is too short.
        """
        if self.train_var_ is None:
            raise RuntimeError(f"baseline {self.name!r}: call fit(train_closes) before forecast")
        horizons = tuple(int(h) for h in horizons)
        times = pd.DatetimeIndex(decision_times)
        rs = five_minute_returns(bars_5m, where=f"{self.name} bars")
        var = self._variance(rs, times, _steps(horizons))
        var = np.where(
            np.isfinite(var), np.maximum(var, _VAR_FLOOR_RATIO * self.train_var_), np.nan
        )
        scale = np.sqrt(var)
        loc = np.where(np.isfinite(scale), 0.0, np.nan)
        return self._distribution(times, horizons, loc, scale)

    def _distribution(
        self, times: pd.DatetimeIndex, horizons: tuple[int, ...], loc: np.ndarray, std: np.ndarray
    ) -> ForecastDistribution:
        """The predictive law with this mean and standard deviation (Gaussian by default)."""
        return ForecastDistribution.gaussian(self.name, times, horizons, loc, std)

    @abstractmethod
    def _variance(
        self, rs: FiveMinuteReturns, times: pd.DatetimeIndex, steps: np.ndarray
    ) -> np.ndarray:
        """(N, H) variance of the sum of the next ``steps`` 5m returns at each time."""


# --------------------------------------------------------------------------- rolling window


class RollingVolBaseline(Baseline):
    """Random walk, variance = mean squared 5m return over the last ``window`` returns × h/5."""

    name = "rolling"

    def __init__(self, window: int = 288) -> None:
        super().__init__()
        if window < 2:
            raise ValueError(f"rolling window must be ≥ 2, got {window}")
        self.window = window
        self.label = f"RW, rolling σ ({window} bars)"

    def _variance(
        self, rs: FiveMinuteReturns, times: pd.DatetimeIndex, steps: np.ndarray
    ) -> np.ndarray:
        k = rs.known_at(times)
        csum = np.concatenate([[0.0], np.cumsum(rs.returns**2)])
        enough = k >= self.window
        lo = np.where(enough, k - self.window, 0)
        var1 = np.where(enough, (csum[k] - csum[lo]) / self.window, np.nan)
        return var1[:, None] * steps[None, :]


# --------------------------------------------------------------------------- EWMA


def ewma_states(x2: np.ndarray, lam: float, init: float) -> np.ndarray:
    """EWMA variance states: s_0 = init, s_{j+1} = λ s_j + (1 − λ) x2_j.

    Args:
        x2: (K,) squared returns in time order.

    Returns:
        (K + 1,) s, where s_j is the one-step variance forecast made after j returns.
    """
    if x2.size == 0:
        return np.array([init])
    y, _ = lfilter([1.0 - lam], [1.0, -lam], x2, zi=[lam * init])
    return np.concatenate([[init], y])


def tune_ewma_lambda(
    returns: np.ndarray,
    lambdas: tuple[float, ...] | list[float],
    objective: str = "loglik",
    factor2: np.ndarray | None = None,
    burn_in: int = _TUNE_BURN_IN,
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
    floor = _VAR_FLOOR_RATIO * float((returns**2).mean())
    r = returns[burn_in:]
    scores: dict[float, float] = {}
    for lam in lambdas:
        var = np.maximum(ewma_states(u2, float(lam), init)[:-1] * f2, floor)[burn_in:]
        if objective == "loglik":
            scores[float(lam)] = float(np.mean(-0.5 * (np.log(2 * np.pi * var) + r * r / var)))
        else:
            scores[float(lam)] = float(np.mean(crps_gaussian(0.0, np.sqrt(var), r)))
    pick = max if objective == "loglik" else min
    best = pick(scores, key=lambda lam: scores[lam])
    return best, scores


class EwmaVolBaseline(Baseline):
    """Random walk with EWMA volatility of 5m returns; λ tuned on the training range."""

    name = "ewma"

    def __init__(
        self,
        lambdas: tuple[float, ...] | list[float] = (0.9, 0.94, 0.97, 0.99),
        objective: str = "loglik",
    ) -> None:
        super().__init__()
        self.lambdas = tuple(float(x) for x in lambdas)
        self.objective = objective
        self.lambda_: float | None = None
        self.scores_: dict[float, float] = {}
        self.label = "RW, EWMA σ"

    def _fit(self, returns: np.ndarray, label_ns: np.ndarray) -> None:
        self.lambda_, self.scores_ = tune_ewma_lambda(returns, self.lambdas, self.objective)
        self.label = f"RW, EWMA σ (λ={self.lambda_:g})"

    def _variance(
        self, rs: FiveMinuteReturns, times: pd.DatetimeIndex, steps: np.ndarray
    ) -> np.ndarray:
        assert self.lambda_ is not None and self.train_var_ is not None
        states = ewma_states(rs.returns**2, self.lambda_, self.train_var_)
        return states[rs.known_at(times)][:, None] * steps[None, :]


# --------------------------------------------------------------------------- seasonal EWMA


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
        return self.factor2[_weekday_slot(label_ns, self.slot_minutes)]


def _weekday_slot(label_ns: np.ndarray, slot_minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """(weekday, Monday = 0; intraday slot) of bars opening at ``label_ns``, same shape."""
    minutes = label_ns // NS_PER_MIN
    weekday = (minutes // 1440 + 3) % 7  # 1970-01-01 was a Thursday
    return weekday, (minutes % 1440) // slot_minutes


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
    weekday, slot = _weekday_slot(label_ns, slot_minutes)
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
    floor = _VAR_FLOOR_RATIO * overall
    factor2 = np.maximum(cell_var, floor) / overall
    norm = float(factor2[weekday, slot].mean())
    return SeasonalFactors(slot_minutes, factor2 / norm)


class SeasonalEwmaBaseline(EwmaVolBaseline):
    """EWMA on deseasonalised 5m returns, re-seasonalised over the horizon's future slots."""

    name = "ewma_seasonal"

    def __init__(
        self,
        lambdas: tuple[float, ...] | list[float] = (0.9, 0.94, 0.97, 0.99),
        objective: str = "loglik",
        slot_minutes: int = 60,
        prior_count: float = 20.0,
    ) -> None:
        super().__init__(lambdas, objective)
        if slot_minutes % 5 or 1440 % slot_minutes:
            raise ValueError(
                f"slot_minutes must be a multiple of 5 dividing 1440, got {slot_minutes}"
            )
        self.slot_minutes = slot_minutes
        self.prior_count = prior_count
        self.factors_: SeasonalFactors | None = None
        self.init_u2_: float | None = None
        self.label = "RW, seasonal EWMA σ"

    def _fit(self, returns: np.ndarray, label_ns: np.ndarray) -> None:
        self.factors_ = estimate_seasonal_factors(
            returns, label_ns, self.slot_minutes, self.prior_count
        )
        factor2 = self.factors_.at(label_ns)
        self.init_u2_ = float(np.mean(returns**2 / factor2))
        self.lambda_, self.scores_ = tune_ewma_lambda(
            returns, self.lambdas, self.objective, factor2=factor2
        )
        self.label = f"RW, seasonal EWMA σ (λ={self.lambda_:g})"

    def _variance(
        self, rs: FiveMinuteReturns, times: pd.DatetimeIndex, steps: np.ndarray
    ) -> np.ndarray:
        assert self.lambda_ is not None and self.factors_ is not None
        u2 = rs.returns**2 / self.factors_.at(rs.label_ns)
        assert self.init_u2_ is not None
        states = ewma_states(u2, self.lambda_, self.init_u2_)
        base = states[rs.known_at(times)]
        # future bars open at t, t+5, ..., t+5(m-1) minutes
        offsets = np.arange(int(steps.max())) * _BAR_NS
        future = _utc_ns(times)[:, None] // _BAR_NS * _BAR_NS + offsets[None, :]
        cum = np.cumsum(self.factors_.at(future), axis=1)
        return base[:, None] * cum[:, steps - 1]


# --------------------------------------------------------------------------- GARCH(1,1)


@dataclass(frozen=True)
class GarchFit:
    """GARCH(1,1) parameters in return units (not rescaled) and the state at the fit's end.

    σ²_{j+1} = omega + alpha r_j² + beta σ²_j.

    Attributes:
        omega, alpha, beta: parameters.
        nu: Student-t degrees of freedom (None for normal innovations).
        last_var: conditional variance σ²_T of the last return in the fit window.
        last_return: that return r_T.
        converged: the optimiser reported convergence.
    """

    omega: float
    alpha: float
    beta: float
    nu: float | None
    last_var: float
    last_return: float
    converged: bool

    @property
    def next_var(self) -> float:
        """One-step variance forecast after the window: omega + alpha r_T² + beta σ²_T."""
        return self.omega + self.alpha * self.last_return**2 + self.beta * self.last_var

    @property
    def unconditional_var(self) -> float:
        persistence = self.alpha + self.beta
        return self.omega / (1.0 - persistence) if persistence < 1 else math.inf


def fit_garch(returns: np.ndarray, dist: str = "t") -> GarchFit:
    """Fit a zero-mean GARCH(1,1) with ``arch`` on (K,) returns, internally rescaled to unit variance."""
    r = np.asarray(returns, dtype=np.float64)
    rms = math.sqrt(float(np.mean(r * r)))
    if r.size < 10 or rms <= 0:
        raise DataError(f"GARCH fit needs moving prices: {r.size} returns, rms {rms:g}")
    scale = 1.0 / rms
    model = arch_model(
        r * scale,
        mean="Zero",
        vol="GARCH",
        p=1,
        q=1,
        dist="t" if dist == "t" else "normal",
        rescale=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(disp="off", show_warning=False)
    params = res.params
    s2 = scale * scale
    cond_vol = np.asarray(res.conditional_volatility, dtype=np.float64)
    return GarchFit(
        omega=float(params["omega"]) / s2,
        alpha=float(params["alpha[1]"]),
        beta=float(params["beta[1]"]),
        nu=float(params["nu"]) if "nu" in params else None,
        last_var=float(cond_vol[-1] ** 2) / s2,
        last_return=float(r[-1]),
        converged=int(res.convergence_flag) == 0,
    )


def garch_horizon_variance(
    next_var: np.ndarray, omega: float, alpha: float, beta: float, steps: np.ndarray
) -> np.ndarray:
    """Variance of the sum of the next m returns, Σ_{i=1..m} E[σ²_{T+i}], for each m in steps.

    Args:
        next_var: (N,) one-step variances σ²_{T+1}.
        steps: (H,) numbers of steps m ≥ 1.

    Returns:
        (N, H).
    """
    m_max = int(np.max(steps))
    cur = np.asarray(next_var, dtype=np.float64).copy()
    cum = np.empty((cur.size, m_max))
    total = np.zeros_like(cur)
    for i in range(m_max):
        total = total + cur
        cum[:, i] = total
        cur = omega + (alpha + beta) * cur
    return cum[:, np.asarray(steps) - 1]


class GarchBaseline(Baseline):
    """Random walk with GARCH(1,1) volatility, refitted every ``refit_every`` decision times.

    Decision times are taken in time order; the 1st, (K+1)th, ... trigger a fit on the last
    ``window`` returns known then. A fit that fails or does not converge keeps the previous
    parameters (the variance is filtered on with them) and is counted in ``refit_failures_``,
    which the report prints. Before enough history exists (250 returns) the training-range
    fit is used, filtered from its unconditional variance.

    With ``dist="t"`` the forecast is the fitted Student-t (ν of the fit in force at each
    decision time) scaled to the h-step variance: exact at one step (5 min); for longer
    horizons the sum of GARCH-t returns has thinner tails than one t, so this keeps the
    one-step tail shape, the common practical choice, and is named for what it is.

    Attributes:
        train_fit_: the fit on the end of the training range.
        fits_: (decision time, GarchFit) of each rolling refit of the last ``forecast`` call.
        refit_failures_: refits of the last ``forecast`` call that raised or did not converge.
    """

    name = "garch"

    def __init__(self, window: int = 2880, refit_every: int = 24, dist: str = "t") -> None:
        super().__init__()
        if dist not in ("normal", "t"):
            raise ValueError(f"GARCH dist must be normal or t, got {dist!r}")
        if window < 100 or refit_every < 1:
            raise ValueError("GARCH window must be ≥ 100 returns and refit_every ≥ 1")
        self.window = window
        self.refit_every = refit_every
        self.dist = dist
        self.train_fit_: GarchFit | None = None
        self.fits_: list[tuple[pd.Timestamp, GarchFit]] = []
        self.refit_failures_ = 0
        self._nu_rows: np.ndarray = np.empty(0)
        self.label = f"RW, GARCH(1,1)-{'t' if dist == 't' else 'N'}"

    def _distribution(
        self, times: pd.DatetimeIndex, horizons: tuple[int, ...], loc: np.ndarray, std: np.ndarray
    ) -> ForecastDistribution:
        if self.dist != "t":
            return super()._distribution(times, horizons, loc, std)
        df = np.broadcast_to(self._nu_rows[:, None], std.shape).copy()
        return ForecastDistribution.student_t(self.name, times, horizons, loc, std, df)

    def _fit(self, returns: np.ndarray, label_ns: np.ndarray) -> None:
        self.train_fit_ = fit_garch(returns[-self.window :], self.dist)

    def _variance(
        self, rs: FiveMinuteReturns, times: pd.DatetimeIndex, steps: np.ndarray
    ) -> np.ndarray:
        assert self.train_fit_ is not None
        order = np.argsort(_utc_ns(times), kind="stable")
        k_sorted = rs.known_at(times)[order]
        r2 = rs.returns**2
        out = np.empty((len(times), len(steps)))
        nu_rows = np.empty(len(times))
        params: GarchFit = self.train_fit_
        rolling_fit = False
        # state: v_state = conditional variance of return number k_state (the next unknown one)
        k_state = 0
        v_state = params.unconditional_var
        if not math.isfinite(v_state):
            v_state = float(self.train_var_ or 0.0)
        self.fits_ = []
        self.refit_failures_ = 0
        for start in range(0, len(order), self.refit_every):
            rows = order[start : start + self.refit_every]
            kb = k_sorted[start : start + self.refit_every]
            k0 = int(kb[0])
            if k0 >= _MIN_GARCH_FIT:
                try:
                    fit: GarchFit | None = fit_garch(
                        rs.returns[max(0, k0 - self.window) : k0], self.dist
                    )
                except (ValueError, np.linalg.LinAlgError) as exc:  # DataError is a ValueError
                    logger.warning(
                        f"GARCH refit at {times[rows[0]]} failed ({exc}); keeping the last fit"
                    )
                    fit = None
                if fit is None or not fit.converged:
                    self.refit_failures_ += 1
                if fit is not None and (fit.converged or not rolling_fit):
                    params, rolling_fit = fit, True
                    k_state, v_state = k0, fit.next_var
                    self.fits_.append((times[rows[0]], fit))
            k_max = int(kb.max())
            path = np.array([v_state])
            if k_max > k_state:  # filter forward with fixed parameters
                x = params.omega + params.alpha * r2[k_state:k_max]
                y, _ = lfilter([1.0], [1.0, -params.beta], x, zi=[params.beta * v_state])
                path = np.concatenate([path, y])
                k_state, v_state = k_max, float(path[-1])
            next_var = path[np.clip(kb - (k_state - len(path) + 1), 0, None)]
            out[rows] = garch_horizon_variance(
                next_var, params.omega, params.alpha, params.beta, steps
            )
            nu_rows[rows] = params.nu if params.nu is not None else np.nan
        self._nu_rows = nu_rows
        return out


def build_baselines(cfg: EvaluationConfig) -> list[Baseline]:
    """The baselines named in ``cfg.baselines``, configured (not yet fitted)."""
    out: list[Baseline] = []
    for name in cfg.baselines:
        if name == "rolling":
            out.append(RollingVolBaseline(cfg.rolling_window))
        elif name == "ewma":
            out.append(EwmaVolBaseline(cfg.ewma_lambdas, cfg.ewma_objective))
        elif name == "ewma_seasonal":
            out.append(
                SeasonalEwmaBaseline(
                    cfg.ewma_lambdas,
                    cfg.ewma_objective,
                    cfg.seasonal_slot_minutes,
                    cfg.seasonal_prior_count,
                )
            )
        elif name == "garch":
            out.append(GarchBaseline(cfg.garch_window, cfg.garch_refit_every, cfg.garch_dist))
        else:  # pragma: no cover - the config validates names
            raise ValueError(f"unknown baseline {name!r}")
    return out


# --------------------------------------------------------------------------- fitted state


def baseline_state(baseline: Baseline) -> dict[str, Any]:
    """A fitted baseline as plain JSON values (its name, settings and what ``fit`` estimated),
    so that the exact baseline a model was judged against can be stored and served later."""
    if baseline.train_var_ is None:
        raise RuntimeError(f"baseline {baseline.name!r}: fit it before saving its state")
    state: dict[str, Any] = {"name": baseline.name, "train_var": baseline.train_var_}
    if isinstance(baseline, RollingVolBaseline):
        state["window"] = baseline.window
    elif isinstance(baseline, EwmaVolBaseline):
        state.update(
            lambdas=list(baseline.lambdas), objective=baseline.objective, lambda_=baseline.lambda_
        )
        if isinstance(baseline, SeasonalEwmaBaseline):
            assert baseline.factors_ is not None
            state.update(
                slot_minutes=baseline.slot_minutes,
                prior_count=baseline.prior_count,
                factor2=baseline.factors_.factor2.tolist(),
                init_u2=baseline.init_u2_,
            )
    elif isinstance(baseline, GarchBaseline):
        assert baseline.train_fit_ is not None
        state.update(
            window=baseline.window,
            refit_every=baseline.refit_every,
            dist=baseline.dist,
            train_fit=asdict(baseline.train_fit_),
        )
    else:  # pragma: no cover - every baseline class is listed above
        raise TypeError(f"no state for a {type(baseline).__name__}")
    return state


def baseline_from_state(state: Mapping[str, Any]) -> Baseline:
    """The fitted baseline saved by :func:`baseline_state` (ready to ``forecast``).

    Raises:
        ValueError: an unknown baseline name or a state missing what that baseline needs.
    """
    name = state.get("name")
    try:
        baseline: Baseline
        if name == "rolling":
            baseline = RollingVolBaseline(int(state["window"]))
        elif name in ("ewma", "ewma_seasonal"):
            lambdas = [float(x) for x in state["lambdas"]]
            if name == "ewma":
                baseline = EwmaVolBaseline(lambdas, str(state["objective"]))
            else:
                seasonal = SeasonalEwmaBaseline(
                    lambdas,
                    str(state["objective"]),
                    int(state["slot_minutes"]),
                    float(state["prior_count"]),
                )
                seasonal.factors_ = SeasonalFactors(
                    seasonal.slot_minutes, np.asarray(state["factor2"], dtype=np.float64)
                )
                seasonal.init_u2_ = float(state["init_u2"])
                baseline = seasonal
            assert isinstance(baseline, EwmaVolBaseline)
            baseline.lambda_ = float(state["lambda_"])
            baseline.label = (
                f"RW, {'seasonal ' if name == 'ewma_seasonal' else ''}EWMA σ "
                f"(λ={baseline.lambda_:g})"
            )
        elif name == "garch":
            garch = GarchBaseline(int(state["window"]), int(state["refit_every"]), state["dist"])
            garch.train_fit_ = GarchFit(**state["train_fit"])
            baseline = garch
        else:
            raise ValueError(f"unknown baseline {name!r}")
        baseline.train_var_ = float(state["train_var"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"baseline state of {name!r} is incomplete ({exc!r})") from None
    return baseline
