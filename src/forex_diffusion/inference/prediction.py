"""``SSSDPrediction``: one forecast of the price change for every horizon, with conversions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class SSSDPrediction:
    """A forecast made at decision time ``timestamp`` (close of the latest complete 5m bar).

    ``mean``/``std``/``q05``/``q50``/``q95`` map horizon minutes → price change in price
    units (close(t+h) − close(t)); ``samples`` maps horizon → (num_samples,) price changes.
    """

    asset: str
    timestamp: pd.Timestamp
    horizons: list[int]
    mean: dict[int, float]
    std: dict[int, float]
    q05: dict[int, float]
    q50: dict[int, float]
    q95: dict[int, float]
    last_close: float
    inference_time_ms: float
    model_name: str
    num_samples: int
    pip_size: float = 0.0001
    samples: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_samples(
        cls,
        samples: dict[int, np.ndarray],
        *,
        asset: str,
        timestamp: pd.Timestamp,
        last_close: float,
        inference_time_ms: float,
        model_name: str,
        pip_size: float,
    ) -> SSSDPrediction:
        """Summarise price-change samples per horizon into mean, std and 5/50/95 % quantiles."""
        horizons = sorted(samples)
        stats = {h: np.quantile(samples[h], [0.05, 0.5, 0.95]) for h in horizons}
        return cls(
            asset=asset,
            timestamp=timestamp,
            horizons=horizons,
            mean={h: float(np.mean(samples[h])) for h in horizons},
            std={h: float(np.std(samples[h], ddof=1)) for h in horizons},
            q05={h: float(stats[h][0]) for h in horizons},
            q50={h: float(stats[h][1]) for h in horizons},
            q95={h: float(stats[h][2]) for h in horizons},
            last_close=float(last_close),
            inference_time_ms=float(inference_time_ms),
            model_name=model_name,
            num_samples=len(samples[horizons[0]]),
            pip_size=float(pip_size),
            samples={h: np.asarray(samples[h], dtype=np.float64) for h in horizons},
        )

    # ------------------------------------------------------------------ conversions
    def prob_up(self, horizon: int) -> float:
        """Share of samples with a positive price change.

        Raises:
            KeyError: ``horizon`` is not one of the prediction's (they are listed).
        """
        if horizon not in self.samples:
            raise KeyError(f"horizon {horizon} not in the prediction's horizons {self.horizons}")
        return float(np.mean(self.samples[horizon] > 0))

    def in_pips(self) -> dict[str, dict[int, float]]:
        """mean/std/q05/q50/q95 in pips."""
        return {
            name: {h: v / self.pip_size for h, v in getattr(self, name).items()}
            for name in ("mean", "std", "q05", "q50", "q95")
        }

    def price_levels(self) -> dict[str, dict[int, float]]:
        """Predicted price levels: last_close + change (mean and quantiles)."""
        return {
            name: {h: self.last_close + v for h, v in getattr(self, name).items()}
            for name in ("mean", "q05", "q50", "q95")
        }

    def to_dict(self, include_samples: bool = False) -> dict[str, Any]:
        """JSON-compatible dict (horizon keys become strings)."""
        out: dict[str, Any] = {
            "asset": self.asset,
            "timestamp": self.timestamp.isoformat(),
            "horizons": list(self.horizons),
            "last_close": self.last_close,
            "pip_size": self.pip_size,
            "inference_time_ms": self.inference_time_ms,
            "model_name": self.model_name,
            "num_samples": self.num_samples,
        }
        for name in ("mean", "std", "q05", "q50", "q95"):
            out[name] = {str(h): v for h, v in getattr(self, name).items()}
        pips = self.in_pips()
        out["mean_pips"] = {str(h): v for h, v in pips["mean"].items()}
        out["std_pips"] = {str(h): v for h, v in pips["std"].items()}
        out["prob_up"] = {str(h): self.prob_up(h) for h in self.horizons} if self.samples else {}
        if include_samples:
            out["samples"] = {str(h): s.tolist() for h, s in self.samples.items()}
        return out

    def to_json(self, include_samples: bool = False) -> str:
        return json.dumps(self.to_dict(include_samples=include_samples))


def directional_confidence(pred: SSSDPrediction, horizon: int) -> float:
    """P(the more likely direction) from the samples, in [0.5, 1]."""
    p_up = pred.prob_up(horizon)
    return max(p_up, 1.0 - p_up)


def direction_from_prediction(pred: SSSDPrediction, horizon: int, threshold: float) -> str:
    """ "up"/"down" when that direction's probability reaches ``threshold``, else "neutral"."""
    p_up = pred.prob_up(horizon)
    if p_up >= threshold:
        return "up"
    if 1.0 - p_up >= threshold:
        return "down"
    return "neutral"
