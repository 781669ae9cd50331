"""A learned peer for the evaluation: LightGBM quantile regression, one model per horizon × level.

What a quant builds in an afternoon: gradient-boosted quantile regression on the same causal
flat features (plus realised-volatility features), fitted on the model's training range only.
The target of each horizon is divided by a causal scale known at t (for example the seasonal
EWMA σ forecast) when one is given, so the trees learn shape, not level. Predicted quantiles
are sorted so they never cross, and turned into a distribution by interpolating the quantile
function linearly in normal scores z = Φ⁻¹(τ) (linear extrapolation beyond the outer levels:
Gaussian-shaped tails), which is then represented by S pseudo-samples at levels k/(S+1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forex_diffusion.normal import ndtri

DEFAULT_LEVELS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))


@dataclass
class LightGBMQuantilePeer:
    """Per-horizon LightGBM quantile regressors.

    Attributes:
        levels: quantile levels fitted (sorted, in (0, 1)).
        params: LightGBM parameters shared by every model.
        models: fitted boosters per (horizon, level).
    """

    levels: tuple[float, ...] = DEFAULT_LEVELS
    params: dict[str, Any] = field(
        default_factory=lambda: {
            "n_estimators": 200,
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_child_samples": 200,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "n_jobs": 1,
            "verbose": -1,
        }
    )
    seed: int = 0
    models: dict[tuple[int, float], Any] = field(default_factory=dict, repr=False)
    feature_names: list[str] = field(default_factory=list)

    def fit(
        self,
        X: pd.DataFrame,
        y: Mapping[int, np.ndarray],
        scale: Mapping[int, np.ndarray] | None = None,
    ) -> LightGBMQuantilePeer:
        """Fit one model per horizon and level.

        Args:
            X: (N, F) causal features at the training decision times.
            y: per horizon, (N,) targets (log returns); NaN rows are skipped.
            scale: per horizon, (N,) positive causal scales (targets are divided by them).
        """
        from lightgbm import LGBMRegressor

        self.feature_names = [str(c) for c in X.columns]
        values = X.to_numpy(np.float64)
        for h, target in y.items():
            t = np.asarray(target, dtype=np.float64)
            if scale is not None:
                t = t / np.asarray(scale[h], dtype=np.float64)
            ok = np.isfinite(t)
            if ok.sum() < 50:
                raise ValueError(f"horizon {h}: only {int(ok.sum())} usable training rows")
            for level in self.levels:
                model = LGBMRegressor(
                    objective="quantile", alpha=level, random_state=self.seed, **self.params
                )
                model.fit(values[ok], t[ok])
                self.models[(int(h), level)] = model
        return self

    def predict_quantiles(
        self, X: pd.DataFrame, horizon: int, scale: np.ndarray | None = None
    ) -> np.ndarray:
        """(N, L) sorted quantiles at :attr:`levels` (times ``scale`` when given)."""
        if list(map(str, X.columns)) != self.feature_names:
            raise ValueError("features differ from those the peer was fitted on")
        values = X.to_numpy(np.float64)
        q = np.stack(
            [self.models[(int(horizon), lv)].predict(values) for lv in self.levels], axis=1
        )
        q = np.sort(q, axis=1)
        if scale is not None:
            q = q * np.asarray(scale, dtype=np.float64)[:, None]
        return q

    def predict_samples(
        self, X: pd.DataFrame, horizon: int, scale: np.ndarray | None = None, num_samples: int = 200
    ) -> np.ndarray:
        """(N, S) pseudo-samples of the interpolated quantile function (see the module doc)."""
        return quantiles_to_samples(
            self.predict_quantiles(X, horizon, scale), self.levels, num_samples
        )


def quantiles_to_samples(q: np.ndarray, levels: Sequence[float], num_samples: int) -> np.ndarray:
    """Pseudo-samples at levels k/(S+1), k = 1..S, of the quantile function through ``q``.

    Args:
        q: (N, L) non-decreasing quantiles at ``levels``.
        levels: (L,) increasing levels in (0, 1), L ≥ 2.
        num_samples: S.

    Returns:
        (N, S) values, non-decreasing along the last axis.
    """
    z_fit = ndtri(np.asarray(levels, dtype=np.float64))
    z = ndtri(np.arange(1, num_samples + 1) / (num_samples + 1.0))
    # piecewise-linear in z inside, linear extrapolation with the end segments' slopes
    idx = np.clip(np.searchsorted(z_fit, z) - 1, 0, len(z_fit) - 2)
    z0, z1 = z_fit[idx], z_fit[idx + 1]
    w = (z - z0) / (z1 - z0)
    out = q[:, idx] * (1 - w) + q[:, idx + 1] * w
    return np.maximum.accumulate(out, axis=1)


# --------------------------------------------------------------------------- in the evaluation


def peer_features(
    base: pd.DataFrame, bars_5m: pd.DataFrame, times: pd.DatetimeIndex
) -> pd.DataFrame:
    """Causal features of the learned peer at decision times (closes of 5m bars).

    HAR realised volatility (rv, Parkinson, Garman–Klass over the last hour, day and week, from
    the base candles), the last 5m, 15m and 60m log returns, and the time of day and of week
    as sines and cosines. Every value at t uses bars closed by t only.
    """
    from forex_diffusion.features.realized import realized_features

    har = realized_features(base)
    har.index = har.index + pd.Timedelta(minutes=5)  # by close time
    close = pd.Series(
        bars_5m["close"].to_numpy(np.float64), index=bars_5m.index + pd.Timedelta(minutes=5)
    )
    logc = np.log(close)
    out = har.reindex(times)
    for k, name in ((1, "r_5m"), (3, "r_15m"), (12, "r_60m")):
        out[name] = (logc - logc.shift(k)).reindex(times).to_numpy()
    minutes = times.hour * 60 + times.minute
    week = times.day_of_week * 1440 + minutes
    out["tod_sin"] = np.sin(2 * np.pi * minutes / 1440)
    out["tod_cos"] = np.cos(2 * np.pi * minutes / 1440)
    out["tow_sin"] = np.sin(2 * np.pi * week / 10080)
    out["tow_cos"] = np.cos(2 * np.pi * week / 10080)
    return out
