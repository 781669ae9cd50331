"""A common container for predictive distributions of log returns (SPEC §7).

Every forecaster evaluated by ``forex_diffusion.evaluation`` (the SSSD model and the
baselines) hands back a :class:`ForecastDistribution`: for N decision times and H horizons,
either a Gaussian (``loc``, ``scale`` arrays of shape (N, H), :class:`GaussianForecast`) or
Monte-Carlo samples of shape (N, H, S) (``forex_diffusion.forecast.SampleForecast``, the
estimators the model, the service and the training metrics use too). Everything is in
LOG-RETURN space, r = log(close(t+h) / close(t)); ``forex_diffusion.features.targets``
converts to price units or pips given the last close.

Rows may be NaN where a forecaster had too little history; metrics skip them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from forex_diffusion.forecast import Forecast, Levels, Rows, SampleForecast, crps_ensemble_fair
from forex_diffusion.normal import ndtr, ndtri

Kind = Literal["gaussian", "student_t", "samples"]

# Named on every call: scoringrules' default backend is process-wide state (numba when
# installed, which compiles on first use).
_BACKEND = "numpy"


def crps_gaussian(mu: npt.ArrayLike, sigma: npt.ArrayLike, y: npt.ArrayLike) -> np.ndarray:
    """Closed-form CRPS of N(mu, sigma²) at ``y`` (Gneiting et al. 2005), broadcast elementwise.

    CRPS = sigma · [z (2Φ(z) − 1) + 2 φ(z) − 1/√π], z = (y − mu) / sigma
    (``scoringrules.crps_normal``).
    """
    import scoringrules as sr  # imported here: forecasting needs no scoring (start-up)

    mu, sigma, y = (np.asarray(a, dtype=np.float64) for a in (mu, sigma, y))
    return np.asarray(sr.crps_normal(y, mu, sigma, backend=_BACKEND))


def crps_student_t(
    mu: npt.ArrayLike, sigma: npt.ArrayLike, nu: npt.ArrayLike, y: npt.ArrayLike
) -> np.ndarray:
    """Closed-form CRPS of a location-scale Student-t (ν > 1) at ``y``, elementwise.

    scoringrules' ``crps_t``: with z = (y − mu)/sigma and F_ν, f_ν the standard t CDF and
    density, CRPS = sigma · [z (2F_ν(z) − 1) + 2 f_ν(z) (ν + z²)/(ν − 1)
    − 2√ν B(½, ν − ½) / ((ν − 1) B(½, ν/2)²)].
    """
    mu, sigma, nu, y = (np.asarray(a, dtype=np.float64) for a in (mu, sigma, nu, y))
    if np.any(nu[np.isfinite(nu)] <= 1):
        raise ValueError("the Student-t CRPS needs ν > 1 (finite mean)")
    import scoringrules as sr  # imported here: forecasting needs no scoring (start-up)

    return np.asarray(sr.crps_t(y, nu, mu, sigma, backend=_BACKEND), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class GaussianForecast:
    """The parametric form of a forecast (the baselines): N(loc, scale²) per cell (...).

    It implements the same ``forex_diffusion.forecast.Forecast`` protocol as the sample form;
    the two share the interface, not the arithmetic (closed forms here, sample estimators there).
    """

    loc: np.ndarray
    scale: np.ndarray

    def valid(self) -> np.ndarray:
        return np.isfinite(self.loc) & np.isfinite(self.scale)

    def mean(self) -> np.ndarray:
        return self.loc.copy()

    def std(self) -> np.ndarray:
        return self.scale.copy()

    def quantile(self, q: Levels) -> np.ndarray:
        levels = np.asarray(q, dtype=np.float64)
        z = ndtri(levels)
        if not levels.ndim:
            return self.loc + self.scale * float(z)
        return self.loc + self.scale * z.reshape(z.shape + (1,) * self.loc.ndim)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        out = ndtr((y - self.loc) / self.scale)
        return np.where(np.isfinite(y) & self.valid(), out, np.nan)

    def select(self, rows: Rows) -> GaussianForecast:
        return GaussianForecast(self.loc[rows], self.scale[rows])


@dataclass(frozen=True, eq=False)
class StudentTForecast:
    """loc + scale·T_ν per cell (...): the GARCH-t baseline's own predictive law.

    ``scale`` is the t's scale parameter, so the standard deviation is scale·√(ν/(ν − 2)).
    Same protocol as the Gaussian and sample forms.
    """

    loc: np.ndarray
    scale: np.ndarray
    df: np.ndarray

    def valid(self) -> np.ndarray:
        return np.isfinite(self.loc) & np.isfinite(self.scale) & np.isfinite(self.df)

    def mean(self) -> np.ndarray:
        return self.loc.copy()

    def std(self) -> np.ndarray:
        return self.scale * np.sqrt(self.df / (self.df - 2.0))

    def quantile(self, q: Levels) -> np.ndarray:
        from scipy import stats  # imported here (slow): only the Student-t form needs it

        levels = np.asarray(q, dtype=np.float64)
        if not levels.ndim:
            return self.loc + self.scale * stats.t.ppf(float(levels), self.df)
        lv = levels.reshape(levels.shape + (1,) * self.loc.ndim)
        return self.loc + self.scale * stats.t.ppf(lv, self.df)

    def cdf(self, y: np.ndarray) -> np.ndarray:
        from scipy import stats  # imported here (slow): only the Student-t form needs it

        out = stats.t.cdf((y - self.loc) / self.scale, self.df)
        return np.where(np.isfinite(y) & self.valid(), out, np.nan)

    def select(self, rows: Rows) -> StudentTForecast:
        return StudentTForecast(self.loc[rows], self.scale[rows], self.df[rows])


@dataclass(frozen=True, eq=False)
class ForecastDistribution:
    """Predictive distributions of log returns for N decision times × H horizons.

    Build it with :meth:`gaussian` or :meth:`from_samples` rather than directly. The estimators
    live in ``forecast`` (a ``SampleForecast`` or a ``GaussianForecast``); this class adds the
    decision times and horizons, the checks on levels and shapes, and the CRPS.

    Attributes:
        name: the forecaster's name (e.g. ``"ewma"``, ``"sssd_v1"``).
        times: (N,) decision times (UTC), the close of the latest 5m bar used.
        horizons: (H,) horizons in minutes.
        forecast: the (N, H) distributions.
    """

    name: str
    times: pd.DatetimeIndex
    horizons: tuple[int, ...]
    forecast: Forecast

    # ------------------------------------------------------------------ construction

    @classmethod
    def gaussian(
        cls,
        name: str,
        times: pd.DatetimeIndex,
        horizons: tuple[int, ...] | list[int],
        loc: np.ndarray,
        scale: np.ndarray,
    ) -> ForecastDistribution:
        """Gaussian forecasts; ``loc`` and ``scale`` of shape (N, H), scale > 0 where finite."""
        loc = np.asarray(loc, dtype=np.float64)
        scale = np.asarray(scale, dtype=np.float64)
        shape = (len(times), len(horizons))
        if loc.shape != shape or scale.shape != shape:
            raise ValueError(
                f"forecast {name!r}: loc {loc.shape} and scale {scale.shape} must both have "
                f"shape (decision times, horizons) = {shape}"
            )
        finite = np.isfinite(scale)
        if (scale[finite] <= 0).any():
            raise ValueError(f"forecast {name!r}: scale must be positive where it is finite")
        return cls(
            name,
            _as_utc_index(times),
            tuple(int(h) for h in horizons),
            GaussianForecast(loc, scale),
        )

    @classmethod
    def student_t(
        cls,
        name: str,
        times: pd.DatetimeIndex,
        horizons: tuple[int, ...] | list[int],
        loc: np.ndarray,
        std: np.ndarray,
        df: np.ndarray,
    ) -> ForecastDistribution:
        """Student-t forecasts with standard deviation ``std`` and ``df`` > 2, each (N, H)."""
        loc, std, df = (np.asarray(a, dtype=np.float64) for a in (loc, std, df))
        shape = (len(times), len(horizons))
        if not loc.shape == std.shape == df.shape == shape:
            raise ValueError(
                f"forecast {name!r}: loc {loc.shape}, std {std.shape} and df {df.shape} must "
                f"have shape (decision times, horizons) = {shape}"
            )
        if (std[np.isfinite(std)] <= 0).any() or (df[np.isfinite(df)] <= 2).any():
            raise ValueError(f"forecast {name!r}: std must be positive and df > 2")
        scale = std * np.sqrt((df - 2.0) / df)
        return cls(
            name,
            _as_utc_index(times),
            tuple(int(h) for h in horizons),
            StudentTForecast(loc, scale, df),
        )

    @classmethod
    def from_samples(
        cls,
        name: str,
        times: pd.DatetimeIndex,
        horizons: tuple[int, ...] | list[int],
        samples: np.ndarray,
    ) -> ForecastDistribution:
        """Sample-based forecasts; ``samples`` of shape (N, H, S) with S ≥ 2."""
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 3 or samples.shape[:2] != (len(times), len(horizons)):
            raise ValueError(
                f"forecast {name!r}: samples {samples.shape} must have shape "
                f"(decision times, horizons, samples) = ({len(times)}, {len(horizons)}, S)"
            )
        if samples.shape[2] < 2:
            raise ValueError(f"forecast {name!r}: need at least 2 samples per forecast")
        return cls(
            name,
            _as_utc_index(times),
            tuple(int(h) for h in horizons),
            SampleForecast.of(samples),
        )

    # ------------------------------------------------------------------ properties

    @property
    def shape(self) -> tuple[int, int]:
        """(N, H)."""
        return len(self.times), len(self.horizons)

    @property
    def kind(self) -> Kind:
        """``"samples"``, ``"gaussian"`` or ``"student_t"``."""
        if isinstance(self.forecast, SampleForecast):
            return "samples"
        return "student_t" if isinstance(self.forecast, StudentTForecast) else "gaussian"

    @property
    def samples(self) -> np.ndarray | None:
        """(N, H, S) Monte-Carlo samples (``kind == "samples"``), else None."""
        return self.forecast.samples if isinstance(self.forecast, SampleForecast) else None

    @property
    def loc(self) -> np.ndarray | None:
        """(N, H) Gaussian mean (``kind == "gaussian"``), else None."""
        return self.forecast.loc if isinstance(self.forecast, GaussianForecast) else None

    @property
    def scale(self) -> np.ndarray | None:
        """(N, H) Gaussian standard deviation (``kind == "gaussian"``), else None."""
        return self.forecast.scale if isinstance(self.forecast, GaussianForecast) else None

    def valid(self) -> np.ndarray:
        """(N, H) bool: the forecast is defined (finite)."""
        return self.forecast.valid()

    def mean(self) -> np.ndarray:
        """(N, H) predictive mean of the log return."""
        return self.forecast.mean()

    def std(self) -> np.ndarray:
        """(N, H) predictive standard deviation of the log return (samples: ddof=1)."""
        return self.forecast.std()

    def median(self) -> np.ndarray:
        """(N, H) predictive median."""
        return self.quantile(0.5)

    def quantile(self, q: float | np.ndarray | list[float]) -> np.ndarray:
        """Quantiles of the log return.

        Args:
            q: one level in (0, 1) or a 1-D array of Q levels.

        Returns:
            (N, H) for a scalar ``q``, else (Q, N, H). Samples use linear interpolation.
        """
        levels = np.asarray(q, dtype=np.float64)
        if ((levels <= 0) | (levels >= 1)).any():
            raise ValueError(f"quantile levels must lie strictly between 0 and 1, got {q}")
        return self.forecast.quantile(levels)

    def interval(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """Central interval with probability ``level``: ((N, H) lower, (N, H) upper)."""
        if not 0 < level < 1:
            raise ValueError(f"interval level must lie strictly between 0 and 1, got {level}")
        tail = (1.0 - level) / 2.0
        bounds = self.quantile(np.array([tail, 1.0 - tail]))
        return bounds[0], bounds[1]

    def cdf(self, y: np.ndarray) -> np.ndarray:
        """Probability integral transform F(y), (N, H); NaN where y or the forecast is missing.

        For samples it is the mid-rank ``(#{X < y} + #{X = y}/2 + 1/2) / (S + 1)``, which is
        uniform on a grid of S + 1 points (and so flat in a histogram) when y is exchangeable
        with the samples.
        """
        return self.forecast.cdf(self._observations(y))

    def crps(self, y: np.ndarray) -> np.ndarray:
        """(N, H) CRPS of each forecast against the realised log return ``y`` (NaN if missing).

        Gaussian and Student-t: closed forms; samples: the fair (unbiased) ensemble estimator.
        """
        y = self._observations(y)
        f = self.forecast
        if isinstance(f, GaussianForecast):
            return crps_gaussian(f.loc, f.scale, y)
        if isinstance(f, StudentTForecast):
            return crps_student_t(f.loc, f.scale, f.df, y)
        if isinstance(f, SampleForecast):
            return crps_ensemble_fair(f.samples, y)
        raise TypeError(f"no CRPS for a {type(f).__name__}")

    def renamed(self, name: str) -> ForecastDistribution:
        """The same forecasts under another forecaster name."""
        return ForecastDistribution(name, self.times, self.horizons, self.forecast)

    def select(self, rows: np.ndarray | slice) -> ForecastDistribution:
        """The forecasts for a subset of decision times (boolean mask, indices or slice)."""
        return ForecastDistribution(
            self.name, self.times[rows], self.horizons, self.forecast.select(rows)
        )

    def _observations(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if y.shape != self.shape:
            raise ValueError(f"observations {y.shape} must have shape {self.shape}")
        return y


def _as_utc_index(times: pd.DatetimeIndex) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(times)
    if idx.tz is None:
        raise ValueError("decision times must be tz-aware (UTC)")
    return idx.tz_convert("UTC")
