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

``warm`` starts the windows from a block of candles at once, for a live state that resumes from
features the batch pipeline already computed: the bars come from the batch resampling, and each
timeframe's feature state is fed only its last ``warm_bars`` bars. The recursive smoothers
(EMA, Wilder) weigh their seed by at most ``SEED_WEIGHT`` after that many bars, so the state
equals the one fed every bar since the candles' start, to rounding. ``dataset`` turns the
windows into the one-sample dataset of a decision time (windows, target scales from the kept
5m closes, last close), as the batch pipeline would build it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from forex_diffusion.config.sssd_config import FeaturesConfig, SSSDConfig
from forex_diffusion.dataset.source import FeatureSource, TimeframeBlock
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.features.incremental import Bar, IncrementalTimeframeFeatures, bars_of
from forex_diffusion.features.realized import (
    BaseReturnSquares,
    bar_realized_variance,
    base_return_squares,
    har_warmup,
)
from forex_diffusion.features.seasonal_fit import seasonal_of
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.unified_pipeline import (
    build_bars,
    feature_warmup,
    prepare_candles,
    required_history,
)
from forex_diffusion.timeframes import NS_PER_MIN, timeframe_minutes

SEED_WEIGHT = 1e-12  # weight of a smoother's seed below which the seed no longer matters


def _memory(decay: float) -> int:
    """Steps after which ``decay ** steps`` < SEED_WEIGHT."""
    return math.ceil(math.log(SEED_WEIGHT) / math.log(decay))


def warm_bars(cfg: FeaturesConfig) -> int:
    """Bars that give a timeframe's feature state its full value from any start: the slowest
    smoother's memory (EMA spans, MACD, Wilder windows), plus the warm-up and the longest
    rolling window."""
    spans = [cfg.macd_fast, cfg.macd_slow, cfg.macd_signal, *cfg.ema_windows]
    decays = [1 - 2 / (s + 1) for s in spans] + [1 - 1 / cfg.atr_window, 1 - 1 / cfg.rsi_window]
    windows = [*cfg.rv_windows, cfg.bollinger_window, cfg.donchian_window, cfg.volume_window]
    if cfg.realized:  # the 5m HAR sums over the last week of bars
        windows.append(har_warmup() + 1)
    return _memory(max(decays)) + feature_warmup(cfg) + max(windows)


def scale_bars(cfg: FeaturesConfig) -> int:
    """5m closes the target scale needs (the EWMA of 5m returns forgets its start)."""
    return _memory(cfg.vol_ewma_lambda) + 2


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
        # the targets' seasonal-EWMA scale, as the batch pipeline's FeatureSource carries it
        self.target_seasonal = seasonal if config.data.target_scale == "seasonal_ewma" else None
        self.features = {
            tf: IncrementalTimeframeFeatures(tf, config.features, base, seasonal)
            for tf in self.timeframes
        }
        self._r2 = BaseReturnSquares()
        self.rows: dict[str, deque[np.ndarray]] = {
            tf: deque(maxlen=config.data.lookbacks[tf]) for tf in self.timeframes
        }
        self.row_open_ns: dict[str, deque[int]] = {
            tf: deque(maxlen=config.data.lookbacks[tf]) for tf in self.timeframes
        }
        # (close time ns, close) of the latest 5m bars of the first timeframe: target scales
        keep = scale_bars(config.features)
        if self.target_seasonal is not None:  # its EWMA has its own (fitted) decay
            keep = max(keep, _memory(self.target_seasonal.lam) + 2)
        self.closes: deque[tuple[int, float]] = deque(maxlen=keep)
        self._open: dict[str, _OpenBar | None] = dict.fromkeys(self.timeframes)
        self._stacked: dict[str, np.ndarray | None] = dict.fromkeys(self.timeframes)
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
        self._feed(
            tf,
            Bar(
                bar.key * self.tf_ns[tf],
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                bar.n_base,
                bar.rv,
            ),
            closed,
        )

    def _feed(self, tf: str, bar: Bar, closed: list[tuple[str, np.ndarray]] | None) -> None:
        """One closed bar into ``tf``'s state; its row into the window (and ``closed``)."""
        if tf == self.timeframes[0]:
            self.closes.append((bar.open_ns + self.tf_ns[tf], bar.close))
        feats = self.features[tf]
        row = feats.update(bar)
        if row is None:
            return
        scaled = self.standardizer.transform_values(tf, row[None, :], feats.names)[0]
        self.rows[tf].append(scaled)
        self.row_open_ns[tf].append(bar.open_ns)
        stacked = self._stacked[tf]
        if stacked is not None:  # kept equal to np.stack(self.rows[tf])
            self._stacked[tf] = np.concatenate(
                [stacked[1:] if len(stacked) == self.rows[tf].maxlen else stacked, scaled[None]]
            ).astype(np.float32, copy=False)
        if closed is not None:
            closed.append((tf, scaled))

    def warm(
        self,
        candles: pd.DataFrame,
        rows: Mapping[str, tuple[np.ndarray, np.ndarray]],
        previous: LiveFeatureWindows | None = None,
    ) -> None:
        """Start from ``candles`` (base candles, UTC open-time index) at once, as pushing them
        would (to rounding; see the module docstring), on a fresh instance.

        Args:
            candles: the candles the batch pipeline computed ``rows`` from.
            rows: {tf: (standardized rows (n, F) float32, their bars' open times (n,) int64
                ns)} of the batch features of ``candles``; the windows take their last rows.
            previous: a state of the same model pushed up to the same last candle (e.g. the
                live state before a re-prime): the feature state of each timeframe that has
                at least ``warm_bars`` bars in ``candles`` is taken over from it (it has
                forgotten its own start, as the warmed one would), instead of being warmed.
                ``previous`` is given up: those states move to this instance.
        """
        if self.last_candle_ns is not None:
            raise ValueError("warm() starts a fresh instance; push() continues one")
        frame = prepare_candles(candles, self.config.asset.base_timeframe)
        ns = frame.index.asi8
        bars = build_bars(frame, self.timeframes, self.config.asset.base_timeframe)
        if self.config.features.realized:  # each bar's realised variance, as push() sums it
            for tf in self.timeframes:
                rv = bar_realized_variance(frame, tf).reindex(bars[tf].index)
                bars[tf] = bars[tf].assign(rv=rv.to_numpy(dtype=np.float64))
        r2 = base_return_squares(frame).fillna(0.0).to_numpy(dtype=np.float64)
        self._r2.prev_ns, self._r2.prev_close = int(ns[-1]), float(frame["close"].iloc[-1])
        keep = warm_bars(self.config.features)
        if previous is not None and previous.last_candle_ns != int(ns[-1]):
            raise ValueError("previous must be pushed up to the last of the candles")
        for tf in self.timeframes:
            tf_bars = bars[tf]
            if tf == self.timeframes[0]:
                tail = tf_bars.iloc[-(self.closes.maxlen or 1) :]
                close_ns = tail.index.asi8 + self.tf_ns[tf]
                self.closes.extend(zip(close_ns.tolist(), tail["close"].tolist(), strict=True))
            if previous is not None and len(tf_bars) >= keep:
                self.features[tf] = previous.features[tf]
            else:
                for bar in bars_of(tf_bars.iloc[-keep:]):
                    self.features[tf].update(bar)
            values, open_ns = rows[tf]
            self.rows[tf].clear()
            self.rows[tf].extend(values[-(self.rows[tf].maxlen or 0) :])
            self._stacked[tf] = None
            self.row_open_ns[tf].clear()
            self.row_open_ns[tf].extend(open_ns[-(self.row_open_ns[tf].maxlen or 0) :].tolist())
            # the trailing bar that has not closed yet: the candles of the last bin
            last_key = int(ns[-1]) // self.tf_ns[tf]
            if len(tf_bars) and int(tf_bars.index.asi8[-1]) // self.tf_ns[tf] == last_key:
                continue
            first = int(np.searchsorted(ns // self.tf_ns[tf], last_key))
            part = frame.iloc[first:]
            self._open[tf] = _OpenBar(
                last_key,
                float(part["open"].iloc[0]),
                float(part["high"].max()),
                float(part["low"].min()),
                float(part["close"].iloc[-1]),
                float(part["volume"].sum()) if "volume" in part.columns else 0.0,
                len(part),
                float(r2[first:].sum()),
            )
        self.last_candle_ns = int(ns[-1])

    def dataset(self, decision: pd.Timestamp) -> SSSDTimeSeriesDataset:
        """The one-sample dataset at ``decision`` (a 5m close) from the windows and the kept
        5m closes, as ``SSSDTimeSeriesDataset.from_candles`` builds it from candles.

        Raises:
            DataError: a window is not full, or ``decision`` is not the close of a kept bar.
        """
        for tf in self.timeframes:
            if self._stacked[tf] is None:
                rows = list(self.rows[tf])
                self._stacked[tf] = (
                    np.stack(rows).astype(np.float32, copy=False)
                    if rows
                    else np.zeros((0, len(self.features[tf].names)), np.float32)
                )
        blocks = {
            tf: TimeframeBlock(
                tf,
                np.ascontiguousarray(self._stacked[tf]),
                np.asarray(self.row_open_ns[tf], dtype=np.int64),
                self.config.data.lookbacks[tf],
            )
            for tf in self.timeframes
        }
        close_ns = np.asarray([c[0] for c in self.closes], dtype=np.int64)
        source = FeatureSource(
            blocks,
            {tf: list(self.standardizer.feature_names(tf)) for tf in self.timeframes},
            self.standardizer,
            close_ns,
            np.asarray([c[1] for c in self.closes], dtype=np.float64),
            {tf: b.close_ns for tf, b in blocks.items()},
            required_history(self.config),
            "live feature windows",
            self.target_seasonal,
        )
        return SSSDTimeSeriesDataset.from_source(
            source, self.config, decision_times=[decision], require_targets=False
        )

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
