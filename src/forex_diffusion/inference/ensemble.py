"""``SSSDEnsembleInferenceService``: a weighted mixture of members' predictive distributions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from forex_diffusion.forecast import MixtureForecast
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


def mixture_forecast(
    predictions: Sequence[SSSDPrediction], weights: Sequence[float]
) -> MixtureForecast:
    """The members' price-change samples as one weighted mixture over the first member's
    horizons (see ``MixtureForecast`` for its moments, quantiles and draws)."""
    horizons = predictions[0].horizons
    return MixtureForecast.of([p.forecast(horizons) for p in predictions], weights)


class SSSDEnsembleInferenceService:
    """Weighted ensemble of inference services for one asset.

    Weights must be finite and positive; they are normalised to sum to 1. Members must share
    the asset and the horizons. ``predict`` returns an ``SSSDPrediction`` of the mixture: mean
    and std are the exact mixture moments of the members' forecasts, quantiles those of their
    pooled samples weighted wᵢ/Sᵢ, and ``samples`` holds ``num_samples`` draws, wᵢ·num_samples
    from member i (``forex_diffusion.forecast.MixtureForecast``).
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
        mix = mixture_forecast(preds, self.weights)
        draws = mix.draw(num_samples, self._rng).samples  # (H, num_samples)
        first = preds[0]
        out = SSSDPrediction.from_forecast(
            mix,
            first.horizons,
            samples={h: draws[j] for j, h in enumerate(first.horizons)},
            asset=self.asset,
            timestamp=first.timestamp,
            last_close=first.last_close,
            inference_time_ms=(time.perf_counter() - started) * 1000,
            model_name=self.model_name,
            pip_size=first.pip_size,
        )
        for h in first.horizons:  # what each member served (its fallback policy) and why
            sources = {p.source.get(h, "model") for p in preds}
            out.source[h] = sources.pop() if len(sources) == 1 else "mixed"
            out.card_statement[h] = "; ".join(
                f"member {p.model_name}: {p.source.get(h, 'model')} ({p.card_statement.get(h)})"
                for p in preds
            )
        return out

    def get_direction(self, pred: SSSDPrediction, horizon: int) -> str:
        return direction_from_prediction(pred, horizon, self.direction_threshold)

    def get_directional_confidence(self, pred: SSSDPrediction, horizon: int) -> float:
        return directional_confidence(pred, horizon)
