"""An ``SSSDPrediction`` as the API's JSON: ``to_dict`` plus direction, confidence, price
levels and extra quantile levels (all maps keyed by horizon minutes as strings)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from forex_diffusion.forecast import SampleForecast
from forex_diffusion.inference.sssd_inference import SSSDInferenceService, SSSDPrediction


def finite_or_none(value: Any) -> Any:
    """Floats that JSON cannot carry (NaN, ±inf) become None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def quantile_key(level: float) -> str:
    return f"q{level * 100:g}"


def prediction_payload(
    pred: SSSDPrediction,
    service: SSSDInferenceService,
    quantiles: Sequence[float] = (),
    include_samples: bool = False,
    live: bool = False,
) -> dict[str, Any]:
    """The ``Prediction`` response body of ``pred`` made by ``service``."""
    out = pred.to_dict(include_samples=include_samples)
    horizons = list(pred.horizons)
    out["direction"] = {str(h): service.get_direction(pred, h) for h in horizons}
    out["confidence"] = {str(h): service.get_directional_confidence(pred, h) for h in horizons}
    out["price_levels"] = {
        name: {str(h): v for h, v in levels.items()} for name, levels in pred.price_levels().items()
    }
    out["quantiles"] = {
        quantile_key(q): {
            str(h): float(SampleForecast.of(pred.samples[h]).quantile(q)) for h in horizons
        }
        for q in quantiles
    }
    out["calibrated"] = bool(pred.calibrated)
    out["live"] = live
    return finite_or_none(out)
