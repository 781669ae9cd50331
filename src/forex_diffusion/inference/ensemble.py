"""``SSSDEnsembleInferenceService``: a weighted mixture of members' predictive distributions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from forex_diffusion.inference.prediction import (
    SSSDPrediction,
    direction_from_prediction,
    directional_confidence,
)


class ForecastService(Protocol):
    asset: str
    horizons: list[int]
    model_name: str
    direction_threshold: float

    def predict(self, df: pd.DataFrame, **kwargs: Any) -> SSSDPrediction: ...


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of the discrete distribution putting ``weights`` on ``values`` (midpoint rule)."""
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, cdf, v)


def mixture_prediction(
    predictions: Sequence[SSSDPrediction],
    weights: Sequence[float],
    num_samples: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Mixture statistics per horizon.

    Mean and variance are the exact mixture moments of the members' reported mean/std
    (μ = Σ wᵢμᵢ, σ² = Σ wᵢ(σᵢ² + μᵢ²) − μ²); quantiles are those of the pooled member samples
    weighted by wᵢ/Sᵢ; ``samples`` holds ``num_samples`` draws, wᵢ·num_samples from member i.
    """
    w = np.asarray(weights, dtype=np.float64)
    horizons = predictions[0].horizons
    counts = np.floor(w * num_samples).astype(int)
    remainder = num_samples - counts.sum()
    counts[np.argsort(-(w * num_samples - counts))[:remainder]] += 1
    out: dict[str, Any] = {k: {} for k in ("mean", "std", "q05", "q50", "q95", "samples")}
    for h in horizons:
        mu = np.array([p.mean[h] for p in predictions])
        sd = np.array([p.std[h] for p in predictions])
        mean = float(np.sum(w * mu))
        var = float(np.sum(w * (sd**2 + mu**2)) - mean**2)
        pooled = np.concatenate([p.samples[h] for p in predictions])
        pw = np.concatenate(
            [
                np.full(len(p.samples[h]), wi / len(p.samples[h]))
                for p, wi in zip(predictions, w, strict=True)
            ]
        )
        q05, q50, q95 = _weighted_quantiles(pooled, pw, [0.05, 0.5, 0.95])
        draws = [
            rng.choice(p.samples[h], size=n, replace=n > len(p.samples[h]))
            for p, n in zip(predictions, counts, strict=True)
        ]
        out["mean"][h], out["std"][h] = mean, float(np.sqrt(max(var, 0.0)))
        out["q05"][h], out["q50"][h], out["q95"][h] = float(q05), float(q50), float(q95)
        out["samples"][h] = rng.permutation(np.concatenate(draws))
    return out


class SSSDEnsembleInferenceService:
    """Weighted ensemble of inference services for one asset.

    Weights must be finite and positive; they are normalised to sum to 1. Members must share
    the asset and the horizons. ``predict`` returns an ``SSSDPrediction`` of the mixture.
    """

    def __init__(
        self,
        services: Sequence[ForecastService],
        weights: Sequence[float] | None = None,
        seed: int = 0,
    ) -> None:
        if not services:
            raise ValueError("an ensemble needs at least one service")
        weights = [1.0] * len(services) if weights is None else list(weights)
        if len(weights) != len(services):
            raise ValueError(
                f"got {len(weights)} weights for {len(services)} services; give one weight per service"
            )
        w = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"ensemble weights must be finite and positive, got {list(weights)}")
        assets = {s.asset for s in services}
        if len(assets) != 1:
            raise ValueError(f"ensemble members must forecast the same asset, got {sorted(assets)}")
        horizon_sets = {tuple(s.horizons) for s in services}
        if len(horizon_sets) != 1:
            raise ValueError(f"ensemble members must share horizons, got {sorted(horizon_sets)}")
        self.services = list(services)
        self.weights = (w / w.sum()).tolist()
        self.asset = services[0].asset
        self.horizons = list(services[0].horizons)
        self.model_name = "ensemble(" + ",".join(s.model_name for s in services) + ")"
        self.direction_threshold = services[0].direction_threshold
        self._rng = np.random.default_rng(seed)

    def predict(
        self, df: pd.DataFrame, num_samples: int | None = None, **kwargs: Any
    ) -> SSSDPrediction:
        """The mixture forecast; ``num_samples`` None = the first member's default
        (``inference.num_samples``) for every member and for the mixture's draws."""
        started = time.perf_counter()
        preds = [s.predict(df, num_samples=num_samples, **kwargs) for s in self.services]
        stamps = {p.timestamp for p in preds}
        if len(stamps) != 1:
            raise ValueError(f"ensemble members forecast different decision times {sorted(stamps)}")
        if num_samples is None:
            num_samples = preds[0].num_samples
        mix = mixture_prediction(preds, self.weights, num_samples, self._rng)
        first = preds[0]
        return SSSDPrediction(
            asset=self.asset,
            timestamp=first.timestamp,
            horizons=list(first.horizons),
            mean=mix["mean"],
            std=mix["std"],
            q05=mix["q05"],
            q50=mix["q50"],
            q95=mix["q95"],
            last_close=first.last_close,
            inference_time_ms=(time.perf_counter() - started) * 1000,
            model_name=self.model_name,
            num_samples=num_samples,
            pip_size=first.pip_size,
            samples=mix["samples"],
        )

    def get_direction(self, pred: SSSDPrediction, horizon: int) -> str:
        return direction_from_prediction(pred, horizon, self.direction_threshold)

    def get_directional_confidence(self, pred: SSSDPrediction, horizon: int) -> float:
        return directional_confidence(pred, horizon)
