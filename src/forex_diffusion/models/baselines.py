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
for GARCH, from fits on returns known at the refit's decision time. The returns, the EWMA and
the seasonal EWMA are ``features.volatility`` (shared with the model's seasonal target scale).
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
from loguru import logger

from forex_diffusion.config.sssd_config import EvaluationConfig
from forex_diffusion.errors import DataError
from forex_diffusion.features.volatility import (
    TUNE_BURN_IN as _TUNE_BURN_IN,
)
from forex_diffusion.features.volatility import (
    VAR_FLOOR_RATIO as _VAR_FLOOR_RATIO,
)
from forex_diffusion.features.volatility import (
    FiveMinuteReturns,
    SeasonalEwma,
    SeasonalFactors,
    estimate_seasonal_factors,
    ewma_states,
    five_minute_returns,
    tune_ewma_lambda,
)
from forex_diffusion.features.volatility import utc_ns as _utc_ns
from forex_diffusion.models.distribution import ForecastDistribution

__all__ = [
    "Baseline",
    "EwmaVolBaseline",
    "FiveMinuteReturns",
    "GarchBaseline",
    "RollingVolBaseline",
    "SeasonalEwmaBaseline",
    "SeasonalFactors",
    "build_baselines",
    "estimate_seasonal_factors",
    "ewma_states",
    "fit_garch",
    "five_minute_returns",
    "garch_horizon_variance",
    "tune_ewma_lambda",
]

_MIN_GARCH_FIT = 250  # fewer known returns than this: use the training-range GARCH fit


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
        self.fit_: SeasonalEwma | None = None
        self.factors_: SeasonalFactors | None = None
        self.init_u2_: float | None = None
        self.label = "RW, seasonal EWMA σ"

    def _fit(self, returns: np.ndarray, label_ns: np.ndarray) -> None:
        self.fit_ = SeasonalEwma.fit(
            returns, label_ns, self.lambdas, self.objective, self.slot_minutes, self.prior_count
        )
        self.factors_, self.init_u2_ = self.fit_.factors, self.fit_.init_u2
        self.lambda_, self.scores_ = self.fit_.lam, dict(self.fit_.scores)
        self.label = f"RW, seasonal EWMA σ (λ={self.lambda_:g})"

    def _variance(
        self, rs: FiveMinuteReturns, times: pd.DatetimeIndex, steps: np.ndarray
    ) -> np.ndarray:
        assert self.fit_ is not None
        return self.fit_.horizon_variance(rs, _utc_ns(times), steps)


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
    from arch import arch_model  # imported here: slow to import, and only fitting needs it

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
                from scipy.signal import lfilter  # slow to import: only GARCH filtering needs it

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
            if isinstance(baseline, SeasonalEwmaBaseline):
                assert baseline.factors_ is not None and baseline.init_u2_ is not None
                baseline.fit_ = SeasonalEwma(
                    baseline.factors_,
                    baseline.lambda_,
                    baseline.init_u2_,
                    float(state["train_var"]),
                    {},
                )
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
