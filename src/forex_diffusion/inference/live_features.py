"""Live feature windows: standardized model inputs kept up to date one base candle at a time.

``LiveFeatureWindows`` turns base candles (1m or 5m) into closed bars of every configured
timeframe exactly as ``data.resample.resample_ohlc`` does (epoch-anchored bins; a bar closes once
the candles reach its end, or when a candle of a later bin arrives; gaps stay gaps), feeds each
closed bar to that timeframe's ``IncrementalTimeframeFeatures`` and keeps the last ``lookback``
standardized rows. Between calls only the new candles are processed, so a forecast on every new
5m bar no longer recomputes the features of the whole history tail. The windows equal those of
the batch pipeline (``multi_timeframe_features`` + the standardizer) over the same candles, up to
floating-point rounding; ``closed`` lists the bars each ``push`` closed, in order, for a
streaming encoder (``EncoderStream.update``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.features.incremental import Bar, IncrementalTimeframeFeatures
from forex_diffusion.features.realized import BaseReturnSquares
from forex_diffusion.features.seasonal_fit import seasonal_of
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.timeframes import NS_PER_MIN, timeframe_minutes


@dataclass
class _OpenBar:
    key: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    n_base: int
    rv: float


class LiveFeatureWindows:
    """Per-timeframe standardized feature windows (lookback, F), updated from base candles.

    Args:
        config: data.timeframes/lookbacks, features and asset.base_timeframe are used.
        standardizer: the model's fitted standardizer.
    """

    def __init__(self, config: SSSDConfig, standardizer: Standardizer) -> None:
        self.config = config
        self.standardizer = standardizer
        self.timeframes = tuple(config.data.timeframes)
        base = config.asset.base_timeframe
        self.base_ns = timeframe_minutes(base) * NS_PER_MIN
        self.tf_ns = {tf: timeframe_minutes(tf) * NS_PER_MIN for tf in self.timeframes}
        seasonal = seasonal_of(standardizer, config)
        self.features = {
            tf: IncrementalTimeframeFeatures(tf, config.features, base, seasonal)
            for tf in self.timeframes
        }
        self._r2 = BaseReturnSquares()
        self.rows: dict[str, deque[np.ndarray]] = {
            tf: deque(maxlen=config.data.lookbacks[tf]) for tf in self.timeframes
        }
        self._open: dict[str, _OpenBar | None] = dict.fromkeys(self.timeframes)
        self.last_candle_ns: int | None = None

    def push(self, candles: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
        """Consume new base candles (UTC open-time index, increasing, after every earlier one).

        Returns:
            (timeframe, standardized row (F,) float32) of every bar that closed and left the
            feature warm-up, in the order they closed.
        """
        ns = candles.index.as_unit("ns").asi8
        if len(ns) and (np.any(np.diff(ns) <= 0) or (self.last_candle_ns or -1) >= ns[0]):
            raise ValueError("candles must be strictly increasing and newer than those pushed")
        cols = [candles[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close")]
        vol = (
            candles["volume"].to_numpy(dtype=np.float64)
            if "volume" in candles.columns
            else np.zeros(len(ns))
        )
        closed: list[tuple[str, np.ndarray]] = []
        for i in range(len(ns)):
            t = int(ns[i])
            r2 = self._r2.update(t, cols[3][i])
            for tf in self.timeframes:
                self._add(tf, t, cols[0][i], cols[1][i], cols[2][i], cols[3][i], vol[i], r2, closed)
            self.last_candle_ns = t
        return closed

    def _add(
        self,
        tf: str,
        t: int,
        o: float,
        h: float,
        low: float,
        c: float,
        v: float,
        r2: float,
        closed: list[tuple[str, np.ndarray]],
    ) -> None:
        size = self.tf_ns[tf]
        key = t // size
        bar = self._open[tf]
        if bar is not None and bar.key != key:
            self._close(tf, bar, closed)  # a later bin started: that bar's end has passed
            bar = None
        if bar is None:
            bar = _OpenBar(key, o, h, low, c, v, 1, r2)
        else:
            bar.high, bar.low = max(bar.high, h), min(bar.low, low)
            bar.close, bar.volume, bar.n_base = c, bar.volume + v, bar.n_base + 1
            bar.rv += r2
        if t + self.base_ns >= (key + 1) * size:  # the candles reached the bar's end
            self._close(tf, bar, closed)
            bar = None
        self._open[tf] = bar

    def _close(self, tf: str, bar: _OpenBar, closed: list[tuple[str, np.ndarray]]) -> None:
        feats = self.features[tf]
        row = feats.update(
            Bar(
                bar.key * self.tf_ns[tf],
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                bar.n_base,
                bar.rv,
            )
        )
        if row is None:
            return
        scaled = self.standardizer.transform_values(tf, row[None, :], feats.names)[0]
        self.rows[tf].append(scaled)
        closed.append((tf, scaled))

    def ready(self) -> bool:
        """Every timeframe has a full window."""
        return all(len(self.rows[tf]) == self.rows[tf].maxlen for tf in self.timeframes)

    def windows(self) -> dict[str, np.ndarray]:
        """{tf: (rows ≤ lookback, F) float32}, oldest row first."""
        return {tf: np.stack(list(self.rows[tf])) for tf in self.timeframes}

    def tensors(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """The windows as model input {tf: (1, lookback, F)}; ValueError until ``ready()``."""
        if not self.ready():
            short = {tf: len(r) for tf, r in self.rows.items() if len(r) < (r.maxlen or 0)}
            raise ValueError(f"not enough closed bars after the feature warm-up yet: {short}")
        return {tf: torch.from_numpy(w)[None].to(device) for tf, w in self.windows().items()}
