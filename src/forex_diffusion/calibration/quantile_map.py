"""Quantile recalibration of a sample-based forecast (Kuleshov et al. 2018, per horizon).

If a forecaster's CDF is F and the PIT values u = F(y) on a calibration range have CDF G, the
recalibrated forecast has CDF G∘F: its τ-quantile is F⁻¹(G⁻¹(τ)). G is the empirical CDF of the
calibration PITs, interpolated linearly between its plotting positions and anchored at (0, 0)
and (1, 1), so G⁻¹ is monotone and never crosses quantiles; a small share ``shrink`` of the
identity keeps it strictly increasing (G_λ = (1 − λ)·G + λ·u).

A map fitted on few independent outcomes mostly fits noise: at a long horizon the calibration
forecasts' outcome windows overlap, so a two-month range holds a few hundred independent
outcomes however many forecasts it has. Given that count n per horizon, the map keeps only the
share of Ĝ − u that stands out of its sampling noise (:func:`evidence_weight`): the
Cramér–von Mises distance ω² = ∫ (Ĝ(u) − u)² du of the PITs from the uniform has mean 1/(6n)
for a calibrated forecaster, and the positive-part James–Stein weight w = max(0, 1 − 1/(6nω²))
scales Ĝ − u, so a map within its noise is the identity and a clearly miscalibrated forecaster
keeps nearly all of its map.

Samples are mapped consistently: the sample of rank k (of S) sits at model level
u_k = (k + 1)/(S + 1) and is replaced by the model's quantile at G⁻¹(u_k), so mean, std, quantiles
and direction of the calibrated forecast all come from one transformed sample set. PIT and
quantiles treat the samples as a continuous distribution with Gaussian tails beyond the
outermost samples (:func:`sample_quantile`), so a forecaster far too narrow for its outcomes is
still resolved instead of piling its PIT values at the edges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forex_diffusion.calibration.location import LocationShrink
from forex_diffusion.forecast import sample_cdf, sample_quantile

FORMAT_VERSION = 1
_MEDIAN = np.array([0.5])


def pit_values(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) PIT of outcomes y (N,) under forecasts of samples (N, S): ``forecast.sample_cdf``."""
    return sample_cdf(samples, y)


def rank_levels(num_samples: int) -> np.ndarray:
    """(S,) levels (k + 1)/(S + 1) at which the sorted samples sit (``forecast.sample_quantile``)."""
    return (np.arange(num_samples) + 1.0) / (num_samples + 1)


def remap_sample_levels(samples: np.ndarray, model_levels: np.ndarray) -> np.ndarray:
    """Samples (…, S) whose rank k is replaced by their quantile at ``model_levels[k]`` ((S,),
    non-decreasing), each sample keeping its position: the one way a level map G⁻¹ (fitted, or
    the running one of adaptive conformal) transforms a sample set."""
    return remap_and_quantiles(samples, model_levels, np.empty(0))[0]


def remap_and_quantiles(
    samples: np.ndarray, model_levels: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`remap_sample_levels` of ``samples`` (…, S), and the quantiles (…, L) of the
    samples as given at ``levels``, from one ``sample_quantile`` pass. ``model_levels`` (S,)
    and ``levels`` (L,) apply to every sample set; (…, S) and (…, L) give each set its own."""
    x = np.asarray(samples, dtype=np.float64)
    s = x.shape[-1]
    order = np.argsort(x, axis=-1, kind="stable")
    model_levels, levels = np.asarray(model_levels), np.asarray(levels)
    if model_levels.ndim > 1 or levels.ndim > 1:
        lead = x.shape[:-1]
        model_levels = np.broadcast_to(model_levels, (*lead, model_levels.shape[-1]))
        levels = np.broadcast_to(levels, (*lead, levels.shape[-1]))
    q = sample_quantile(x, np.concatenate([model_levels, levels], axis=-1))
    out = np.empty_like(q[..., :s])
    np.put_along_axis(out, order, q[..., :s], axis=-1)
    return out, q[..., s:]


@dataclass(frozen=True)
class _Map:
    """G⁻¹ as a monotone piecewise-linear map from target level τ to model level u."""

    tau: np.ndarray  # (K,) increasing, 0 … 1
    u: np.ndarray  # (K,) non-decreasing, 0 … 1

    def __call__(self, levels: np.ndarray) -> np.ndarray:
        return np.interp(np.clip(levels, 0.0, 1.0), self.tau, self.u)


def independent_outcomes(decision_ns: np.ndarray, horizon_minutes: int) -> int:
    """How many of the forecasts made at ``decision_ns`` ((N,) UTC nanoseconds) have outcome
    windows that do not overlap: from the earliest, each next one counted is the first made at
    least ``horizon_minutes`` after the last counted (a weekend separates any two)."""
    t = np.sort(np.asarray(decision_ns, dtype=np.int64))
    if t.size == 0:
        return 0
    step = int(horizon_minutes) * 60_000_000_000
    count, last = 1, t[0]
    while True:
        k = int(np.searchsorted(t, last + step, side="left"))
        if k >= t.size:
            return count
        count, last = count + 1, t[k]


def independent_by_horizon(
    pit_by_horizon: Mapping[int, np.ndarray], decision_ns: np.ndarray
) -> dict[int, int]:
    """Per horizon, the :func:`independent_outcomes` among the forecasts (made at
    ``decision_ns``, (N,)) whose PIT values ((N,) per horizon) are finite."""
    t = np.asarray(decision_ns)
    return {
        int(h): independent_outcomes(t[np.isfinite(np.asarray(p, dtype=np.float64))], int(h))
        for h, p in pit_by_horizon.items()
    }


def cramer_von_mises(pit: np.ndarray) -> float:
    """ω² = ∫ (Ĝ(u) − u)² du of the empirical CDF Ĝ of the finite PIT values (N,) from the
    uniform: (1/(12n) + Σᵢ ((2i − 1)/(2n) − p₍ᵢ₎)²)/n over the sorted values p₍ᵢ₎."""
    p = np.sort(np.clip(pit[np.isfinite(pit)], 0.0, 1.0))
    n = p.size
    if n == 0:
        raise ValueError("the Cramér–von Mises distance needs at least one finite PIT value")
    i = np.arange(1, n + 1)
    return float((1.0 / (12 * n) + np.sum(((2 * i - 1) / (2 * n) - p) ** 2)) / n)


def evidence_weight(pit: np.ndarray, independent: float) -> float:
    """The share w ∈ [0, 1] of the empirical map's departure from the identity that stands out
    of the noise of ``independent`` independent outcomes: max(0, 1 − 1/(6·n·ω²)), ω² the
    :func:`cramer_von_mises` distance of the PIT values (N,), 1/(6n) its mean for a calibrated
    forecaster (positive-part James–Stein)."""
    if independent <= 0:
        return 0.0
    return max(0.0, 1.0 - 1.0 / (6.0 * independent * cramer_von_mises(pit)))


def _fit_map(pit: np.ndarray, shrink: float, knots: int) -> _Map:
    p = np.sort(np.clip(pit[np.isfinite(pit)], 0.0, 1.0))
    n = p.size
    if n < 2:
        raise ValueError(f"recalibration needs at least 2 finite PIT values, got {n}")
    # empirical CDF G at its plotting positions, thinned to ``knots`` points
    idx = np.unique(np.linspace(0, n - 1, min(knots, n)).round().astype(int))
    u = np.r_[0.0, p[idx], 1.0]
    g = np.r_[0.0, (idx + 0.5) / n, 1.0]
    g = (1.0 - shrink) * g + shrink * u  # strictly increasing in u where u increases
    g = np.maximum.accumulate(g)
    # G⁻¹: swap axes; remove repeated τ so interpolation is well defined
    tau, first = np.unique(g, return_index=True)
    return _Map(tau=tau, u=u[first])


@dataclass
class QuantileRecalibrator:
    """Per-horizon quantile recalibration fitted on PIT values of a calibration range.

    Attributes:
        horizons: horizons in minutes, in the order of the fitted maps.
        maps: per horizon, G⁻¹ as (tau, u) knots.
        fitted_on: free-form provenance (range, number of forecasts), stored with the model.
        location: the location shrink applied before the maps (fitted before them, their PIT
            values those of the shrunk forecasts), or None.
    """

    horizons: tuple[int, ...]
    maps: dict[int, _Map] = field(repr=False)
    fitted_on: dict[str, Any] = field(default_factory=dict)
    location: LocationShrink | None = None

    @classmethod
    def fit(
        cls,
        pit_by_horizon: Mapping[int, np.ndarray],
        shrink: float = 0.02,
        knots: int = 200,
        fitted_on: Mapping[str, Any] | None = None,
        location: LocationShrink | None = None,
        independent: Mapping[int, float] | None = None,
    ) -> QuantileRecalibrator:
        """Fit G⁻¹ per horizon from calibration PIT values ((N_h,) arrays in [0, 1]; with a
        ``location`` shrink, the PIT values of the shrunk forecasts). With ``independent`` (per
        horizon, the number of independent outcomes among them: :func:`independent_outcomes`)
        each map keeps only the :func:`evidence_weight` share of Ĝ − u (the rest of it the
        identity), recorded with the counts in ``fitted_on["evidence"]``."""
        if not 0.0 <= shrink < 1.0:
            raise ValueError(f"shrink must be in [0, 1), got {shrink}")
        pits = {int(h): np.asarray(p, dtype=np.float64) for h, p in pit_by_horizon.items()}
        weight = {
            h: 1.0 if independent is None else evidence_weight(p, independent[h])
            for h, p in pits.items()
        }
        maps = {h: _fit_map(p, 1.0 - weight[h] * (1.0 - shrink), knots) for h, p in pits.items()}
        fitted = dict(fitted_on or {})
        if independent is not None:
            fitted["evidence"] = {
                str(h): {"independent_outcomes": int(independent[h]), "map_weight": weight[h]}
                for h in pits
            }
        return cls(tuple(maps), maps, fitted, location)

    @classmethod
    def location_only(
        cls, location: LocationShrink, fitted_on: Mapping[str, Any] | None = None
    ) -> QuantileRecalibrator:
        """The location shrink with identity maps (G⁻¹(τ) = τ): for an asset that has no
        calibration forecasts of its own, only a location pooled from other assets'."""
        identity = _Map(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
        horizons = tuple(location.keep)
        return cls(horizons, dict.fromkeys(horizons, identity), dict(fitted_on or {}), location)

    def kept(self, horizon: int) -> float:
        """The share of ``horizon``'s location the shrink keeps (1 without a shrink)."""
        return 1.0 if self.location is None else self.location.keep.get(int(horizon), 1.0)

    def model_levels(self, horizon: int, levels: Sequence[float] | np.ndarray) -> np.ndarray:
        """The model's own levels G⁻¹(τ) whose quantiles are the calibrated τ-quantiles."""
        return self._map(horizon)(np.asarray(levels, dtype=np.float64))

    def transform_samples(self, horizon: int, samples: np.ndarray) -> np.ndarray:
        """Calibrated samples (…, S): rank k moves to the model quantile at G⁻¹((k + 1)/(S + 1)).

        The output keeps each sample's rank (the map is monotone), so sorting and the order of
        quantiles are unchanged; the spacing changes and, where G⁻¹ reaches beyond the samples'
        levels, the Gaussian tails of :func:`sample_quantile` widen the set.
        """
        x = np.asarray(samples, dtype=np.float64)
        return remap_sample_levels(x, self.model_levels(horizon, rank_levels(x.shape[-1])))

    def transform_at(
        self, horizon: int, samples: np.ndarray, decision_ns: np.ndarray
    ) -> np.ndarray:
        """The calibrated forecasts: (N, S) samples with the location shrunk, then through the
        map (:meth:`transform_shrunk` with this map's own shrink); neither depends on the
        decision times (N,), taken for the interface it shares with the session-conditional
        maps."""
        return self.transform_shrunk(horizon, samples, self.kept(horizon))

    def transform_shrunk(self, horizon: int, samples: np.ndarray, keep: float) -> np.ndarray:
        """Samples (…, S) with their location shrunk to the share ``keep``
        (``location.shrink_location``), then through the map (:meth:`transform_samples`).

        The map is equivariant to a shift of each sample set (``sample_quantile`` is), so the
        shrink is applied after it, with the median (the 0.5 quantile, ``np.median``'s value)
        taken from the same sorting pass: map(x − c) = map(x) − c."""
        x = np.asarray(samples, dtype=np.float64)
        if keep == 1.0:
            return self.transform_samples(horizon, x)
        model_levels = self.model_levels(horizon, rank_levels(x.shape[-1]))
        out, median = remap_and_quantiles(x, model_levels, _MEDIAN)
        return out - (1.0 - keep) * median

    def _map(self, horizon: int) -> _Map:
        try:
            return self.maps[int(horizon)]
        except KeyError:
            raise KeyError(
                f"no calibration for horizon {horizon}; have {list(self.horizons)}"
            ) from None

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (stored in the checkpoint; ``location`` only when there is one,
        so a map without it reads as before)."""
        out: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "horizons": list(self.horizons),
            "maps": {
                str(h): {"tau": m.tau.tolist(), "u": m.u.tolist()} for h, m in self.maps.items()
            },
            "fitted_on": self.fitted_on,
        }
        if self.location is not None:
            out["location"] = self.location.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QuantileRecalibrator:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"calibration format {version!r} is not supported (expected {FORMAT_VERSION})"
            )
        maps = {
            int(h): _Map(
                np.asarray(m["tau"], dtype=np.float64), np.asarray(m["u"], dtype=np.float64)
            )
            for h, m in data["maps"].items()
        }
        for h, m in maps.items():
            if m.tau.shape != m.u.shape or np.any(np.diff(m.tau) <= 0) or np.any(np.diff(m.u) < 0):
                raise ValueError(f"calibration map for horizon {h} is not monotone")
        location = data.get("location")
        return cls(
            tuple(int(h) for h in data["horizons"]),
            maps,
            dict(data.get("fitted_on", {})),
            None if location is None else LocationShrink.from_dict(location),
        )
