"""Shrinkage of a forecast's location towards no change, per horizon, fitted on validation.

A sample forecast x (S samples of one horizon's log return) has a location, its median m. Where
the model's location carries less signal than it claims (its shifts larger than the part of the
outcome they predict, common at long horizons), the forecast scores better with the same spread
centred closer to zero. The shrunk forecast keeps a share k of the location:

    x'_i = x_i − (1 − k)·m,        k ∈ [0, 1]  (k = 1: unchanged, k = 0: median at zero)

k is chosen per horizon on the calibration forecasts as the grid value that minimises the mean
CRPS of the shrunk raw samples; ``curves`` keeps that mean CRPS along the grid relative to
k = 1, so that the curves of several assets can be pooled (:meth:`LocationShrink.pool`) for an
asset that has no calibration forecasts of its own. The shift is one number per forecast, so it
commutes with each forecast's positive target scale and with the monotone quantile map fitted
after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from forex_diffusion.forecast import crps_ensemble_fair

#: shares of the location kept that the fit chooses among
GRID = np.round(np.linspace(0.0, 1.0, 21), 10)


def shrink_location(samples: np.ndarray, keep: float) -> np.ndarray:
    """Samples (…, S) of each forecast moved by −(1 − keep)·(their median): the location shrunk."""
    x = np.asarray(samples, dtype=np.float64)
    if keep == 1.0:
        return x
    return x - (1.0 - keep) * np.median(x, axis=-1, keepdims=True)


def relative_crps_curve(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(len(GRID),) mean CRPS of forecasts (N, S) for outcomes y (N,) with the location kept at
    each share of ``GRID``, divided by the mean CRPS of the forecasts as they are (k = 1);
    forecasts with a non-finite outcome or sample are left out."""
    x = np.asarray(samples, dtype=np.float64)
    yy = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(yy) & np.isfinite(x).all(axis=-1)
    if ok.sum() < 2:
        raise ValueError(f"the location fit needs at least 2 finite forecasts, got {ok.sum()}")
    x, yy = x[ok], yy[ok]
    med = np.median(x, axis=-1, keepdims=True)
    crps = np.array([crps_ensemble_fair(x - (1.0 - k) * med, yy).mean() for k in GRID])
    return crps / crps[-1]


def _best(curve: np.ndarray) -> float:
    """The grid share with the lowest curve value (the largest share among equal ones)."""
    c = np.asarray(curve)
    return float(GRID[len(c) - 1 - int(np.argmin(c[::-1]))])


@dataclass(frozen=True)
class LocationShrink:
    """Per-horizon share of the location kept, with the curves it was chosen from.

    Attributes:
        keep: horizon (minutes) → k in [0, 1].
        curves: horizon → (len(GRID),) mean CRPS relative to k = 1 on the fitting forecasts.
    """

    keep: dict[int, float]
    curves: dict[int, np.ndarray]

    @classmethod
    def fit(
        cls, samples_by_horizon: Mapping[int, np.ndarray], y_by_horizon: Mapping[int, np.ndarray]
    ) -> LocationShrink:
        """k per horizon from forecasts (N, S) and outcomes (N,) of that horizon."""
        curves = {
            int(h): relative_crps_curve(s, y_by_horizon[h]) for h, s in samples_by_horizon.items()
        }
        return cls({h: _best(c) for h, c in curves.items()}, curves)

    @classmethod
    def pool(cls, fitted: Sequence[LocationShrink]) -> LocationShrink:
        """One k per horizon for an asset none of ``fitted`` was fitted on: the minimum of their
        relative curves averaged (each asset counts once, whatever its CRPS level), over the
        horizons they all have."""
        if not fitted:
            raise ValueError("pooling needs at least one fitted location shrink")
        horizons = sorted(set.intersection(*(set(f.curves) for f in fitted)))
        curves = {h: np.mean([f.curves[h] for f in fitted], axis=0) for h in horizons}
        return cls({h: _best(c) for h, c in curves.items()}, curves)

    def apply(self, horizon: int, samples: np.ndarray) -> np.ndarray:
        """Samples (…, S) of ``horizon``'s forecasts with their location shrunk (unchanged for a
        horizon the shrink has no k for)."""
        return shrink_location(samples, self.keep.get(int(horizon), 1.0))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (stored with the calibration in the checkpoint)."""
        return {
            "grid": GRID.tolist(),
            "keep": {str(h): k for h, k in self.keep.items()},
            "curves": {str(h): c.tolist() for h, c in self.curves.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LocationShrink:
        grid = np.asarray(data.get("grid", []), dtype=np.float64)
        if grid.shape != GRID.shape or not np.allclose(grid, GRID):
            raise ValueError("location shrink fitted on another grid; refit the calibration")
        keep = {int(h): float(k) for h, k in data["keep"].items()}
        for h, k in keep.items():
            if not 0.0 <= k <= 1.0:
                raise ValueError(f"location share for horizon {h} is {k}, not in [0, 1]")
        curves = {int(h): np.asarray(c, dtype=np.float64) for h, c in data["curves"].items()}
        return cls(keep, curves)
