"""``SSSDPrediction``: one forecast of the price change for every horizon, with conversions.

It is the public price-unit view of a ``forex_diffusion.forecast`` forecast: its summaries come
from ``summarize`` and its P(up) from ``SampleForecast.prob_up``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forex_diffusion.forecast import Forecast, SampleForecast, summarize

SUMMARIES = ("mean", "std", "q05", "q50", "q95")
QUANTILES = {"q05": 0.05, "q50": 0.5, "q95": 0.95}
UNITS = {
    "mean, std, q05, q50, q95": "price change close(t+h) - close(t), in price units",
    "pips": "the same price changes divided by pip_size",
    "levels": "price levels: last_close + price change",
    "prob_up": "probability that close(t+h) > close(t)",
    "confidence": "probability of the more likely direction, max(prob_up, 1 - prob_up)",
    "direction": "up/down when confidence >= direction_threshold, else neutral",
    "mc_se": "Monte-Carlo standard error of each figure (noise of the sampling; price change, "
    "prob_up as a probability)",
    "horizons": "minutes after the decision time (timestamp, UTC)",
    "source": "what is served per horizon: model, fallback:<baseline> (the best baseline, where "
    "the model's card says it lost significantly) or pool (the model pooled with that baseline)",
    "card_statement": "per horizon, the model card's sentence (how the model did against the best "
    "baseline on a range it never saw) and what is served, or why there is no card",
}


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
    calibrated: bool = False  # the samples went through the model's recalibration map
    seed: int | None = None
    direction_threshold: float = 0.7
    source: dict[int, str] = field(default_factory=dict)  # "model" | "fallback:<b>" | "pool"
    card_statement: dict[int, str] = field(default_factory=dict)
    card: dict[str, Any] | None = None  # the model card (without the baselines' fitted state)

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
        seed: int | None = None,
        direction_threshold: float = 0.7,
    ) -> SSSDPrediction:
        """Summarise price-change samples per horizon into mean, std and 5/50/95 % quantiles."""
        horizons = sorted(samples)
        forecast = SampleForecast.of(np.stack([np.asarray(samples[h]) for h in horizons]))
        return cls.from_forecast(
            forecast,
            horizons,
            samples=samples,
            asset=asset,
            timestamp=timestamp,
            last_close=last_close,
            inference_time_ms=inference_time_ms,
            model_name=model_name,
            pip_size=pip_size,
            seed=seed,
            direction_threshold=direction_threshold,
        )

    @classmethod
    def from_forecast(
        cls,
        forecast: Forecast,
        horizons: Sequence[int],
        *,
        samples: Mapping[int, np.ndarray],
        asset: str,
        timestamp: pd.Timestamp,
        last_close: float,
        inference_time_ms: float,
        model_name: str,
        pip_size: float,
        seed: int | None = None,
        direction_threshold: float = 0.7,
    ) -> SSSDPrediction:
        """The price-unit view of ``forecast`` (leading shape (H,): price changes per horizon):
        its summaries (``forex_diffusion.forecast.summarize``) and ``samples`` per horizon."""
        horizons = list(horizons)
        s = summarize(forecast)

        def per_h(values: np.ndarray) -> dict[int, float]:
            return {h: float(values[j]) for j, h in enumerate(horizons)}

        return cls(
            asset=asset,
            timestamp=timestamp,
            horizons=horizons,
            mean=per_h(s.mean),
            std=per_h(s.std),
            q05=per_h(s.q05),
            q50=per_h(s.q50),
            q95=per_h(s.q95),
            last_close=float(last_close),
            inference_time_ms=float(inference_time_ms),
            model_name=model_name,
            num_samples=len(samples[horizons[0]]),
            pip_size=float(pip_size),
            samples={h: np.asarray(samples[h], dtype=np.float64) for h in horizons},
            seed=seed,
            direction_threshold=float(direction_threshold),
        )

    def forecast(self, horizons: Sequence[int] | None = None) -> SampleForecast:
        """The price-change samples as a forecast over (H, S), rows in ``horizons`` order
        (default: the prediction's).

        Raises:
            KeyError: a horizon is not one of the prediction's (they are listed).
        """
        rows = self.horizons if horizons is None else list(horizons)
        for h in rows:
            self._check_horizon(h)
        return SampleForecast.of(np.stack([self.samples[h] for h in rows]))

    def _check_horizon(self, horizon: int) -> None:
        if horizon not in self.samples:
            raise KeyError(f"horizon {horizon} not in the prediction's horizons {self.horizons}")

    # ------------------------------------------------------------------ conversions
    def prob_up(self, horizon: int) -> float:
        """Share of samples with a positive price change.

        Raises:
            KeyError: ``horizon`` is not one of the prediction's (they are listed).
        """
        self._check_horizon(horizon)
        return float(SampleForecast.of(self.samples[horizon]).prob_up())

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

    def mc_standard_errors(self) -> dict[str, dict[int, float]]:
        """Monte-Carlo standard errors (price units; ``prob_up`` as a probability) of the
        reported summaries, from the samples: the noise a different seed would show.

        ``prob_up``: sqrt(p(1 - p) / S); ``mean``: std / sqrt(S); ``std``: std / sqrt(2(S - 1));
        a quantile q: half the distance between the order statistics at ranks
        S·q ± sqrt(S·q(1 - q)) (the distribution-free 68 % interval of the sample quantile).
        """
        out: dict[str, dict[int, float]] = {k: {} for k in (*SUMMARIES, "prob_up")}
        for h in self.horizons:
            x = np.sort(self.samples[h])
            n = len(x)
            p = self.prob_up(h)
            out["prob_up"][h] = float(np.sqrt(p * (1 - p) / n))
            out["mean"][h] = float(self.std[h] / np.sqrt(n))
            out["std"][h] = float(self.std[h] / np.sqrt(2 * max(n - 1, 1)))
            for name, q in QUANTILES.items():
                half = np.sqrt(n * q * (1 - q))
                lo = int(np.clip(np.floor(n * q - half), 0, n - 1))
                hi = int(np.clip(np.ceil(n * q + half), 0, n - 1))
                out[name][h] = float((x[hi] - x[lo]) / 2)
        return out

    def direction(self, horizon: int) -> str:
        """ "up"/"down" when that direction's probability reaches ``direction_threshold``,
        else "neutral"."""
        return direction_from_prediction(self, horizon, self.direction_threshold)

    def to_dict(self, include_samples: bool = False) -> dict[str, Any]:
        """JSON-compatible dict (horizon keys become strings): the one schema every output
        format (table, JSON, CSV) is rendered from.

        ``mean``/``std``/``q05``/``q50``/``q95``: price change close(t+h) − close(t) in price
        units; ``pips``: the same in pips; ``levels``: last_close + change (price);
        ``mc_se``: Monte-Carlo standard errors of those (price change; ``prob_up`` as a
        probability); ``prob_up``: P(change > 0); ``confidence``: P(the more likely
        direction) = max(prob_up, 1 − prob_up); ``direction``: up/down when ``confidence``
        reaches ``direction_threshold``, else neutral. ``units`` says all this in words.
        """
        out: dict[str, Any] = {
            "asset": self.asset,
            "timestamp": self.timestamp.isoformat(),
            "horizons": list(self.horizons),
            "last_close": self.last_close,
            "pip_size": self.pip_size,
            "inference_time_ms": self.inference_time_ms,
            "model_name": self.model_name,
            "num_samples": self.num_samples,
            "calibrated": self.calibrated,
            "seed": self.seed,
            "direction_threshold": self.direction_threshold,
            "units": dict(UNITS),
            "source": {str(h): self.source.get(h, "model") for h in self.horizons},
            "card_statement": {str(h): self.card_statement.get(h) for h in self.horizons},
            "card": self.card,
        }
        for name in SUMMARIES:
            out[name] = {str(h): v for h, v in getattr(self, name).items()}
        pips = self.in_pips()
        out["mean_pips"] = {str(h): v for h, v in pips["mean"].items()}
        out["std_pips"] = {str(h): v for h, v in pips["std"].items()}
        out["pips"] = {name: {str(h): v for h, v in pips[name].items()} for name in SUMMARIES}
        out["levels"] = {
            name: {str(h): v for h, v in values.items()}
            for name, values in self.price_levels().items()
        }
        if self.samples:
            out["prob_up"] = {str(h): self.prob_up(h) for h in self.horizons}
            out["confidence"] = {str(h): directional_confidence(self, h) for h in self.horizons}
            out["direction"] = {str(h): self.direction(h) for h in self.horizons}
            out["mc_se"] = {
                name: {str(h): v for h, v in values.items()}
                for name, values in self.mc_standard_errors().items()
            }
        else:
            out["prob_up"] = {}
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


def horizon_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per horizon of a prediction's JSON dict (:meth:`SSSDPrediction.to_dict`),
    every column named with its unit (``_change`` price change, ``_pips``, ``_level`` price;
    ``_se`` its Monte-Carlo standard error): what CSV and the table show."""
    rows = []
    timestamp = pd.Timestamp(data["timestamp"])
    se = data.get("mc_se", {})
    for h in data["horizons"]:
        key = str(h)
        row: dict[str, Any] = {
            "asset": data["asset"],
            "decision_time": data["timestamp"],
            "horizon_min": int(h),
            "target_time": (timestamp + pd.Timedelta(minutes=int(h))).isoformat(),
            "last_close": data["last_close"],
            "prob_up": data["prob_up"].get(key),
            "prob_up_se": se.get("prob_up", {}).get(key),
            "confidence": data.get("confidence", {}).get(key),
            "direction": data.get("direction", {}).get(key),
            "source": data.get("source", {}).get(key, "model"),
            "card_statement": data.get("card_statement", {}).get(key),
        }
        for name in SUMMARIES:
            row[f"{name}_change"] = data[name][key]
            row[f"{name}_change_se"] = se.get(name, {}).get(key)
            row[f"{name}_pips"] = data["pips"][name][key]
            if name != "std":
                row[f"{name}_level"] = data["levels"][name][key]
        row.update(
            model_name=data["model_name"], num_samples=data["num_samples"], seed=data["seed"]
        )
        rows.append(row)
    return rows
