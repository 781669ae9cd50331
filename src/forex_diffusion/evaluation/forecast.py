"""A common container for predictive distributions of log returns (SPEC §7).

Every forecaster evaluated by ``forex_diffusion.evaluation`` (the SSSD model and the
baselines) hands back a :class:`ForecastDistribution`: for N decision times and H horizons,
either a Gaussian (``loc``, ``scale`` arrays of shape (N, H)) or Monte-Carlo samples of
shape (N, H, S). Everything is in LOG-RETURN space, r = log(close(t+h) / close(t));
``forex_diffusion.features.targets`` converts to price units or pips given the last close.

Rows may be NaN where a forecaster had too little history; metrics skip them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

Kind = Literal["gaussian", "samples"]


@dataclass(frozen=True, eq=False)
class ForecastDistribution:
    """Predictive distributions of log returns for N decision times × H horizons.

    Build it with :meth:`gaussian` or :meth:`from_samples` rather than directly.

    Attributes:
        name: the forecaster's name (e.g. ``"ewma"``, ``"sssd_v1"``).
        times: (N,) decision times (UTC), the close of the latest 5m bar used.
        horizons: (H,) horizons in minutes.
        kind: ``"gaussian"`` or ``"samples"``.
        loc, scale: (N, H) Gaussian mean and standard deviation (``kind == "gaussian"``).
        samples: (N, H, S) Monte-Carlo samples (``kind == "samples"``).
    """

    name: str
    times: pd.DatetimeIndex
    horizons: tuple[int, ...]
    kind: Kind
    loc: np.ndarray | None = None
    scale: np.ndarray | None = None
    samples: np.ndarray | None = None

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
            name, _as_utc_index(times), tuple(int(h) for h in horizons), "gaussian", loc, scale
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
            name, _as_utc_index(times), tuple(int(h) for h in horizons), "samples", samples=samples
        )

    # ------------------------------------------------------------------ properties

    @property
    def shape(self) -> tuple[int, int]:
        """(N, H)."""
        return len(self.times), len(self.horizons)

    def _samples(self) -> np.ndarray:
        assert self.samples is not None
        return self.samples

    def _gauss(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.loc is not None and self.scale is not None
        return self.loc, self.scale

    def valid(self) -> np.ndarray:
        """(N, H) bool: the forecast is defined (finite)."""
        if self.kind == "gaussian":
            loc, scale = self._gauss()
            return np.isfinite(loc) & np.isfinite(scale)
        return np.isfinite(self._samples()).all(axis=2)

    def mean(self) -> np.ndarray:
        """(N, H) predictive mean of the log return."""
        if self.kind == "gaussian":
            return self._gauss()[0].copy()
        return self._samples().mean(axis=2)

    def std(self) -> np.ndarray:
        """(N, H) predictive standard deviation of the log return (samples: ddof=1)."""
        if self.kind == "gaussian":
            return self._gauss()[1].copy()
        return self._samples().std(axis=2, ddof=1)

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
        if self.kind == "gaussian":
            loc, scale = self._gauss()
            z = ndtri(levels)
            return loc + scale * z[..., None, None] if levels.ndim else loc + scale * float(z)
        return np.quantile(self._samples(), levels, axis=2)

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
        y = np.asarray(y, dtype=np.float64)
        if y.shape != self.shape:
            raise ValueError(f"observations {y.shape} must have shape {self.shape}")
        if self.kind == "gaussian":
            loc, scale = self._gauss()
            out = ndtr((y - loc) / scale)
        else:
            x = self._samples()
            below = (x < y[..., None]).sum(axis=2)
            equal = (x == y[..., None]).sum(axis=2)
            out = (below + 0.5 * equal + 0.5) / (x.shape[2] + 1)
        return np.where(np.isfinite(y) & self.valid(), out, np.nan)

    def crps(self, y: np.ndarray) -> np.ndarray:
        """(N, H) CRPS of each forecast against the realised log return ``y`` (NaN if missing).

        Gaussian: closed form; samples: the fair (unbiased) ensemble estimator.
        """
        from forex_diffusion.evaluation.metrics import crps_ensemble_fair, crps_gaussian

        y = np.asarray(y, dtype=np.float64)
        if y.shape != self.shape:
            raise ValueError(f"observations {y.shape} must have shape {self.shape}")
        if self.kind == "gaussian":
            loc, scale = self._gauss()
            return crps_gaussian(loc, scale, y)
        return crps_ensemble_fair(self._samples(), y)

    def select(self, rows: np.ndarray | slice) -> ForecastDistribution:
        """The forecasts for a subset of decision times (boolean mask, indices or slice)."""
        times = self.times[rows]
        if self.kind == "gaussian":
            loc, scale = self._gauss()
            return ForecastDistribution(
                self.name, times, self.horizons, "gaussian", loc[rows], scale[rows]
            )
        return ForecastDistribution(
            self.name, times, self.horizons, "samples", samples=self._samples()[rows]
        )


def _as_utc_index(times: pd.DatetimeIndex) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(times)
    if idx.tz is None:
        raise ValueError("decision times must be tz-aware (UTC)")
    return idx.tz_convert("UTC")
