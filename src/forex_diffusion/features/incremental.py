"""Incremental per-timeframe features: one newly closed bar → its feature row, from the state.

``IncrementalTimeframeFeatures`` keeps, per feature family of ``features.indicators``, the state
that family needs (previous close, EMA and Wilder accumulators, the last ``window`` values of
rolling statistics) and turns each newly closed bar of its timeframe into the row that
``unified_pipeline.compute_timeframe_features`` gives that bar when run over all bars fed so far
(same columns, same order, same conventions: EMA seeded with the first value, Wilder smoothing
seeded with the mean of the first ``window`` valid values, rolling statistics with the current
bar and ddof=0), plus the 5m extras (``features.realized``: HAR means of the bar's realised
variance ``Bar.rv`` and range variances; ``features.time_of_week``: the training fit's slot
scales). The first ``feature_warmup`` bars give no row, as the batch drops them. Results equal
the batch computation up to floating-point rounding (running sums against pandas' own).

One bar costs O(F + largest window) instead of recomputing the whole history.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import FeaturesConfig
from forex_diffusion.errors import ConfigError
from forex_diffusion.features import indicators as ind
from forex_diffusion.features import realized as rz
from forex_diffusion.features.unified_pipeline import (
    EXTRAS_TIMEFRAME,
    feature_names,
    feature_warmup,
)
from forex_diffusion.features.volatility import SeasonalEwma
from forex_diffusion.timeframes import NS_PER_DAY, NS_PER_MIN, timeframe_minutes

_SESSION_ZONES = [(ZoneInfo(zone), start, end) for zone, start, end in ind.SESSIONS.values()]


@dataclass(frozen=True)
class Bar:
    """One closed bar: open time (ns since the epoch, UTC), OHLCV, the number of base bars and
    ``rv``, the realised variance of the base candles inside it (``realized.bar_realized_variance``;
    needed by the 5m bars with ``features.realized``)."""

    open_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    n_base: int | None = None
    rv: float | None = None


class _Ema:
    """ema_t = ema_{t-1} + 2/(span+1)·(x_t - ema_{t-1}), seeded with the first value."""

    def __init__(self, span: int) -> None:
        self.alpha = 2.0 / (span + 1.0)
        self.value: float | None = None

    def update(self, x: float) -> float:
        self.value = x if self.value is None else (1 - self.alpha) * self.value + self.alpha * x
        return self.value


class _Wilder:
    """Wilder smoothing of values that start being valid (not NaN) at some bar: NaN until
    ``window`` valid values are seen, then their mean, then s ← s + (x - s)/window."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.seed: list[float] = []
        self.value = math.nan

    def update(self, x: float) -> float:
        if math.isnan(x) and not self.seed:
            return math.nan
        if len(self.seed) < self.window:
            self.seed.append(x)
            if len(self.seed) == self.window:
                self.value = float(np.mean(np.asarray(self.seed)))
            return self.value
        alpha = 1.0 / self.window
        self.value = (1 - alpha) * self.value + alpha * x
        return self.value


class _Window:
    """The last ``size`` values (NaN included); ``full()`` once ``size`` values were seen."""

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)

    def push(self, x: float) -> np.ndarray:
        self.values.append(x)
        return np.asarray(self.values)

    def full(self) -> bool:
        return len(self.values) == self.values.maxlen


def _ratio(num: float, den: float, fill: float) -> float:
    """``indicators._safe_ratio`` for scalars."""
    if not (math.isfinite(num) and math.isfinite(den)):
        return math.nan
    return fill if den == 0 else num / den


def _rolling(window: _Window, x: float, stat: Callable[[np.ndarray], float]) -> float:
    """``stat`` of the last window values including ``x``; NaN until full or with a NaN inside
    (pandas ``rolling(w, min_periods=w)``)."""
    values = window.push(x)
    if not window.full() or np.isnan(values).any():
        return math.nan
    return float(stat(values))


class IncrementalTimeframeFeatures:
    """Raw features of one timeframe, updated one closed bar at a time.

    Args:
        timeframe: the bars' timeframe ("5m", "1h", ...).
        cfg: the feature configuration (``features.names`` and windows).
        base_timeframe: the base candles' timeframe (for ``bar_fill``).
        seasonal: the model's seasonal-EWMA fit (needed by the 5m ``features.time_of_week``).

    Raises:
        ConfigError: ``features.time_of_week`` on the 5m timeframe without ``seasonal``.
    """

    def __init__(
        self,
        timeframe: str,
        cfg: FeaturesConfig,
        base_timeframe: str = "1m",
        seasonal: SeasonalEwma | None = None,
    ) -> None:
        self.timeframe = timeframe
        self.cfg = cfg
        self.tf_minutes = timeframe_minutes(timeframe)
        self.base_minutes = timeframe_minutes(base_timeframe)
        self.names = feature_names(cfg, timeframe)
        self.warmup = feature_warmup(cfg, timeframe)
        extras = timeframe == EXTRAS_TIMEFRAME
        self._realized = extras and cfg.realized
        self._seasonal = seasonal if extras and cfg.time_of_week else None
        if extras and cfg.time_of_week and seasonal is None:
            raise ConfigError(
                "features.time_of_week needs the model's seasonal-EWMA fit "
                "(features.seasonal_fit.seasonal_of(standardizer, config))"
            )
        self._har = {
            (col, w): _Window(w) for col in ("rv", "pk", "gk") for w in rz.WINDOWS.values()
        }
        self.bars_seen = 0
        self.prev_close = math.nan
        self.prev_open_ns: int | None = None
        c = cfg
        self._atr = _Wilder(c.atr_window)
        self._rsi_gain, self._rsi_loss = _Wilder(c.rsi_window), _Wilder(c.rsi_window)
        self._rv = {w: _Window(w) for w in c.rv_windows}
        self._boll = _Window(c.bollinger_window)
        self._macd_fast, self._macd_slow = _Ema(c.macd_fast), _Ema(c.macd_slow)
        self._macd_signal = _Ema(c.macd_signal)
        self._macd_atr = _Wilder(c.atr_window)
        self._ema = {w: _Ema(w) for w in c.ema_windows}
        self._dc_high, self._dc_low = _Window(c.donchian_window), _Window(c.donchian_window)
        self._vol_sum, self._vol_count = _Window(c.volume_window), _Window(c.volume_window)

    def update(self, bar: Bar) -> np.ndarray | None:
        """Consume the next closed bar; its raw feature row (F,) float64 in ``names`` order, or
        None while the bar is inside the warm-up (rows the batch computation drops)."""
        if self.prev_open_ns is not None and bar.open_ns <= self.prev_open_ns:
            raise ValueError(
                f"{self.timeframe} bars must arrive in time order: {bar.open_ns} after "
                f"{self.prev_open_ns}"
            )
        tr = max(
            bar.high - bar.low, abs(bar.high - self.prev_close), abs(bar.low - self.prev_close)
        )
        if math.isnan(self.prev_close):
            tr = math.nan  # np.maximum propagates the NaN of the missing previous close
        values: list[float] = []
        for name in self.cfg.names:
            values.extend(self._family(name, bar, tr))
        if self._realized:
            values.extend(self._har_row(bar))
        if self._seasonal is not None:
            opens = np.array([bar.open_ns, bar.open_ns + self.tf_minutes * NS_PER_MIN])
            values.extend(float(x) for x in self._seasonal.log_slot_scale(opens))
        self.prev_close, self.prev_open_ns = bar.close, bar.open_ns
        self.bars_seen += 1
        if self.bars_seen <= self.warmup:
            return None
        return np.asarray(values, dtype=np.float64)

    def _har_row(self, bar: Bar) -> list[float]:
        """``realized.har_features`` of this bar: ½ log of each variance's mean over the last
        hour, day and week of bars (NaN until the window is full)."""
        if bar.rv is None:
            raise ValueError(
                "features.realized: the 5m bar carries no realised variance (Bar.rv); feed bars "
                "built from base candles (bars_of a frame with an 'rv' column, or "
                "LiveFeatureWindows)"
            )
        ranges = rz.range_variances(
            np.array([bar.open]), np.array([bar.high]), np.array([bar.low]), np.array([bar.close])
        )
        variances = {"rv": bar.rv, "pk": float(ranges["pk"][0]), "gk": float(ranges["gk"][0])}
        out = []
        for col in ("rv", "pk", "gk"):
            v = max(variances[col], 0.0)
            for w in rz.WINDOWS.values():
                mean = _rolling(self._har[(col, w)], v, np.mean)
                out.append(0.5 * math.log(max(mean, rz.FLOOR)) if mean == mean else math.nan)
        return out

    def _family(self, name: str, bar: Bar, tr: float) -> list[float]:
        c, prev = self.cfg, self.prev_close
        if name == "returns":
            lp = math.log(prev) if not math.isnan(prev) else math.nan
            return [math.log(x) - lp for x in (bar.open, bar.high, bar.low, bar.close)]
        if name == "range_body":
            return [math.log(bar.high / bar.low), math.log(bar.close / bar.open)]
        if name == "realized_vol":
            r2 = math.log(bar.close / prev) ** 2 if not math.isnan(prev) else math.nan
            return [math.sqrt(_rolling(self._rv[w], r2, np.mean)) for w in c.rv_windows]
        if name == "atr":
            return [self._atr.update(tr) / bar.close]
        if name == "rsi":
            delta = bar.close - prev
            gain = self._rsi_gain.update(delta if delta > 0 else (0.0 if delta == delta else delta))
            loss = self._rsi_loss.update(
                -delta if delta < 0 else (0.0 if delta == delta else delta)
            )
            return [100.0 * _ratio(gain, gain + loss, 0.5)]
        if name == "bollinger":
            values = self._boll.push(bar.close)
            if not self._boll.full():
                return [math.nan, math.nan]
            mean, std = float(values.mean()), float(values.std())
            std = 0.0 if std <= 1e-12 * mean else std
            return [
                0.5 + _ratio(bar.close - mean, 2.0 * c.bollinger_k * std, 0.0),
                2.0 * c.bollinger_k * std / mean,
            ]
        if name == "macd":
            line = self._macd_fast.update(bar.close) - self._macd_slow.update(bar.close)
            sig = self._macd_signal.update(line)
            vol = self._macd_atr.update(tr)
            return [_ratio(line, vol, 0.0), _ratio(sig, vol, 0.0)]
        if name == "ema_distance":
            return [math.log(bar.close / self._ema[w].update(bar.close)) for w in c.ema_windows]
        if name == "donchian":
            hh = _rolling(self._dc_high, bar.high, np.max)
            ll = _rolling(self._dc_low, bar.low, np.min)
            return [_ratio(bar.close - ll, hh - ll, 0.5), math.log(hh / ll)]
        if name == "calendar":
            day_frac = (bar.open_ns % NS_PER_DAY) / NS_PER_DAY
            weekday = datetime.fromtimestamp(bar.open_ns // 10**9, UTC).weekday()
            week_frac = (weekday + day_frac) / 7.0
            return [
                math.sin(2 * math.pi * day_frac),
                math.cos(2 * math.pi * day_frac),
                math.sin(2 * math.pi * week_frac),
                math.cos(2 * math.pi * week_frac),
            ]
        if name == "sessions":
            when = datetime.fromtimestamp(bar.open_ns // 10**9, UTC)
            flags = []
            for zone, start, end in _SESSION_ZONES:
                local = when.astimezone(zone)
                hour = local.hour + local.minute / 60.0
                flags.append(1.0 if start <= hour < end else 0.0)
            return flags
        if name == "gap":
            if self.prev_open_ns is None:
                gap_log = math.nan
            else:
                gap_log = math.log((bar.open_ns - self.prev_open_ns) / (self.tf_minutes * 60e9))
            fill = 1.0
            if bar.n_base is not None:
                fill = min(bar.n_base * self.base_minutes / self.tf_minutes, 1.0)
            return [gap_log, fill]
        if name == "volume":
            present = bar.volume > 0
            total = _rolling(self._vol_sum, bar.volume, np.sum)
            count = _rolling(self._vol_count, float(present), np.sum)
            mean = _ratio(total, count, 0.0)
            ratio = math.nan if math.isnan(mean) else 0.0
            if present and mean > 0:
                ratio = math.log(bar.volume / mean)
            return [ratio, float(present)]
        raise ValueError(f"unknown feature family {name!r}")


def bars_of(frame: pd.DataFrame) -> list[Bar]:
    """The rows of a bar frame (``resample_ohlc`` output) as ``Bar`` objects, in order."""
    ns = frame.index.as_unit("ns").asi8
    vol = frame["volume"].to_numpy() if "volume" in frame.columns else np.zeros(len(frame))
    n_base = frame["n_base"].to_numpy() if "n_base" in frame.columns else None
    rv = frame["rv"].to_numpy(dtype=np.float64) if "rv" in frame.columns else None
    o, h, low, c = (frame[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close"))
    return [
        Bar(
            int(ns[i]),
            float(o[i]),
            float(h[i]),
            float(low[i]),
            float(c[i]),
            float(vol[i]),
            int(n_base[i]) if n_base is not None else None,
            float(rv[i]) if rv is not None else None,
        )
        for i in range(len(frame))
    ]
