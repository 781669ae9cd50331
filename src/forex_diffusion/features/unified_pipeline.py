"""Multi-timeframe feature pipeline (SPEC §3, §11).

Base candles (1m or 5m) -> causal bars of every configured timeframe (``resample_ohlc``) ->
the configured feature families computed on EACH timeframe's own bars -> warm-up rows
dropped -> standardized with a standardizer fitted on the training split only.

Every timeframe gets the feature families of ``features.names``, in that order; the 5m
timeframe (that of the decision times) may add, after them, the HAR realised volatilities
(``features.realized``, from the base candles inside each 5m bar) and the hour-of-week
volatility scale (``features.time_of_week``, from the seasonal-EWMA fit of the training
range, see ``features.seasonal_fit``). With neither, every timeframe has the same columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import FeaturesConfig, SSSDConfig
from forex_diffusion.data.candles import validate_candles
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.errors import ConfigError, DataError
from forex_diffusion.features import indicators as ind
from forex_diffusion.features import realized as rz
from forex_diffusion.features.seasonal_fit import (
    fit_seasonal,
    needs_seasonal,
    seasonal_of,
    with_seasonal,
)
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.volatility import SeasonalEwma
from forex_diffusion.timeframes import NS_PER_MIN, timeframe_minutes

OutputFormat = Literal["flat", "sequence", "multi_timeframe"]
# Recursive smoothers are given this many spans / windows of history before use, so that the
# value no longer depends noticeably on where the data starts (EMA: weight of the seed
# <= exp(-2 * 2) ~ 2 %; Wilder: (1 - 1/n)^(2n) ~ 13 % of a seed that is itself a mean).
EMA_SETTLE_SPANS = 2
WILDER_SETTLE_WINDOWS = 3


@dataclass(frozen=True)
class _Family:
    compute: Callable[[pd.DataFrame, FeaturesConfig, int, int], pd.DataFrame]
    warmup: Callable[[FeaturesConfig], int]


def _macd_warmup(c: FeaturesConfig) -> int:
    return max(
        EMA_SETTLE_SPANS * (c.macd_slow + c.macd_signal), WILDER_SETTLE_WINDOWS * c.atr_window
    )


FAMILIES: dict[str, _Family] = {
    "returns": _Family(lambda b, c, tf, base: ind.log_returns(b), lambda c: 1),
    "range_body": _Family(lambda b, c, tf, base: ind.range_body(b), lambda c: 0),
    "realized_vol": _Family(
        lambda b, c, tf, base: ind.realized_vol(b["close"], c.rv_windows),
        lambda c: max(c.rv_windows),
    ),
    "atr": _Family(
        lambda b, c, tf, base: ind.atr(b, c.atr_window),
        lambda c: WILDER_SETTLE_WINDOWS * c.atr_window,
    ),
    "rsi": _Family(
        lambda b, c, tf, base: ind.rsi(b["close"], c.rsi_window),
        lambda c: WILDER_SETTLE_WINDOWS * c.rsi_window,
    ),
    "bollinger": _Family(
        lambda b, c, tf, base: ind.bollinger(b["close"], c.bollinger_window, c.bollinger_k),
        lambda c: c.bollinger_window,
    ),
    "macd": _Family(
        lambda b, c, tf, base: ind.macd(b, c.macd_fast, c.macd_slow, c.macd_signal, c.atr_window),
        _macd_warmup,
    ),
    "ema_distance": _Family(
        lambda b, c, tf, base: ind.ema_distance(b["close"], c.ema_windows),
        lambda c: EMA_SETTLE_SPANS * max(c.ema_windows),
    ),
    "donchian": _Family(
        lambda b, c, tf, base: ind.donchian(b, c.donchian_window), lambda c: c.donchian_window
    ),
    "calendar": _Family(lambda b, c, tf, base: ind.calendar(b.index), lambda c: 0),
    "sessions": _Family(lambda b, c, tf, base: ind.sessions(b.index), lambda c: 0),
    "gap": _Family(
        lambda b, c, tf, base: ind.gap(
            b.index, tf, b["n_base"].to_numpy() if "n_base" in b.columns else None, base
        ),
        lambda c: 1,
    ),
    "volume": _Family(
        lambda b, c, tf, base: ind.volume(b["volume"], c.volume_window), lambda c: c.volume_window
    ),
}


# the timeframe of the decision times, the only one that gets the optional extra inputs
EXTRAS_TIMEFRAME = "5m"
TIME_OF_WEEK_NAMES = ("tow_log_scale", "tow_log_scale_next")


def family_warmup(name: str, cfg: FeaturesConfig) -> int:
    """Leading bars of a timeframe that family ``name`` needs before its values are used."""
    return FAMILIES[name].warmup(cfg)


def feature_warmup(cfg: FeaturesConfig, timeframe: str | None = None) -> int:
    """Bars dropped at the start of ``timeframe``'s feature frame (None: the warm-up of the
    ``features.names`` families, which every timeframe has; the 5m extras may add to it)."""
    warm = max(family_warmup(name, cfg) for name in cfg.names)
    if timeframe == EXTRAS_TIMEFRAME and cfg.realized:
        warm = max(warm, rz.har_warmup())
    return warm


def required_history(config: SSSDConfig) -> dict[str, int]:
    """Complete bars each timeframe needs before the first decision time: warm-up + lookback."""
    return {
        tf: feature_warmup(config.features, tf) + config.data.lookbacks[tf]
        for tf in config.data.timeframes
    }


def history_shortfall(
    needed: Mapping[str, int], given: Mapping[str, int], warmup: int | Mapping[str, int]
) -> str:
    """Per timeframe short of history: the bars it needs (warm-up + lookback) and has."""
    warm = warmup if isinstance(warmup, Mapping) else dict.fromkeys(needed, warmup)
    parts = [
        f"{tf} needs {needed[tf]} complete bars ({warm[tf]} warm-up + {needed[tf] - warm[tf]} "
        f"lookback) and the candles give {given[tf]}"
        for tf in needed
        if given[tf] < needed[tf]
    ]
    return "; ".join(parts)


def history_warmups(config: SSSDConfig) -> dict[str, int]:
    """Warm-up bars of every configured timeframe."""
    return {tf: feature_warmup(config.features, tf) for tf in config.data.timeframes}


def prepare_candles(df: pd.DataFrame, base_timeframe: str, where: str = "candles") -> pd.DataFrame:
    """Validate the candle contract, with a nanosecond UTC index; check the base grid.

    Raises:
        DataError: any contract violation (NaN, unsorted, duplicates, ...) or, for a 5m base,
            timestamps that are not multiples of 5 minutes.
    """
    out = validate_candles(df, where=where)
    out.index = out.index.as_unit("ns")
    base = timeframe_minutes(base_timeframe)
    if base > 1:
        off = np.flatnonzero(out.index.asi8 % (base * NS_PER_MIN))
        if len(off):
            raise DataError(
                f"{where}: asset.base_timeframe is {base_timeframe} but {len(off)} bar(s) do not "
                f"open on the {base_timeframe} grid (first at {out.index[off[0]]}); set "
                "asset.base_timeframe to the candles' real bar length."
            )
    return out


def build_bars(
    candles: pd.DataFrame, timeframes: tuple[str, ...], base_timeframe: str
) -> dict[str, pd.DataFrame]:
    """Complete bars of each timeframe from prepared base candles (gaps stay gaps)."""
    return {tf: resample_ohlc(candles, tf, base_timeframe=base_timeframe) for tf in timeframes}


def compute_timeframe_features(
    bars: pd.DataFrame,
    timeframe: str,
    cfg: FeaturesConfig,
    base_timeframe: str = "1m",
    seasonal: SeasonalEwma | None = None,
) -> pd.DataFrame:
    """Raw features of one timeframe computed from its own bars, warm-up rows dropped.

    Args:
        bars: complete bars of ``timeframe`` (open-time index, OHLCV, optional n_base; with
            ``features.realized`` the 5m bars also carry ``rv``, the realised variance of the
            base candles inside each bar, as ``multi_timeframe_features`` adds it).
        seasonal: the training range's seasonal-EWMA fit (needed by ``features.time_of_week``).

    Returns:
        float64 frame (rows, F) indexed by bar open time, columns as ``feature_names``.

    Raises:
        DataError: "volume" requested on candles without volume, 5m bars without ``rv`` for
            ``features.realized``, or non-finite values after the warm-up.
        ConfigError: ``features.time_of_week`` without a seasonal fit.
    """
    if "volume" in cfg.names and not (bars["volume"].to_numpy() > 0).any():
        raise DataError(
            f"features.names contains 'volume' but every {timeframe} bar has zero volume "
            "(the candles carry no volume, e.g. HistData); remove 'volume' from features.names."
        )
    tf_min, base_min = timeframe_minutes(timeframe), timeframe_minutes(base_timeframe)
    parts = [FAMILIES[name].compute(bars, cfg, tf_min, base_min) for name in cfg.names]
    if timeframe == EXTRAS_TIMEFRAME:
        parts += _extras(bars, cfg, seasonal)
    frame = pd.concat(parts, axis=1).iloc[feature_warmup(cfg, timeframe) :]
    values = frame.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        raise DataError(
            f"{timeframe} feature {frame.columns[col]!r} is not finite at bar {frame.index[row]} "
            f"({int(bad.sum())} value(s) in all); check the candles around that time."
        )
    return frame


def _extras(
    bars: pd.DataFrame, cfg: FeaturesConfig, seasonal: SeasonalEwma | None
) -> list[pd.DataFrame]:
    """The optional 5m inputs: HAR realised volatilities, hour-of-week volatility scale."""
    out = []
    if cfg.realized:
        if "rv" not in bars.columns:
            raise DataError(
                "features.realized needs the realised variance of the base candles inside each "
                "5m bar (column 'rv'); build the bars with multi_timeframe_features"
            )
        out.append(rz.har_features(rz.bar_variances(bars)))
    if cfg.time_of_week:
        if seasonal is None:
            raise ConfigError(
                "features.time_of_week needs the seasonal-EWMA fit of the training range "
                "(features.seasonal_fit.fit_seasonal, or the model's standardizer)"
            )
        open_ns = bars.index.as_unit("ns").asi8
        close_ns = open_ns + timeframe_minutes(EXTRAS_TIMEFRAME) * NS_PER_MIN
        values = [seasonal.log_slot_scale(open_ns), seasonal.log_slot_scale(close_ns)]
        out.append(pd.DataFrame(dict(zip(TIME_OF_WEEK_NAMES, values, strict=True)), bars.index))
    return out


def feature_names(cfg: FeaturesConfig, timeframe: str | None = None) -> list[str]:
    """Column names of ``timeframe``'s feature frame (None: the ``features.names`` families,
    which every timeframe has; the 5m timeframe appends its extras)."""
    return _with_extras(_family_names(cfg), cfg, timeframe)


def timeframe_feature_names(cfg: FeaturesConfig, timeframes: Iterable[str]) -> dict[str, list[str]]:
    """:func:`feature_names` of each of ``timeframes`` (the families' names computed once)."""
    families = _family_names(cfg)
    return {tf: _with_extras(families, cfg, tf) for tf in timeframes}


def _family_names(cfg: FeaturesConfig) -> list[str]:
    """Column names of the ``features.names`` families, from their features on a few bars."""
    n = max(feature_warmup(cfg) + 2, 3)
    idx = pd.date_range("2020-01-06", periods=n, freq="5min", tz="UTC")
    price = 1.0 + 0.001 * np.arange(n)
    bars = pd.DataFrame(
        {"open": price, "high": price + 0.002, "low": price - 0.002, "close": price, "volume": 1.0},
        index=idx,
    )
    families = cfg.model_copy(update={"realized": False, "time_of_week": False})
    return [str(c) for c in compute_timeframe_features(bars, "5m", families, "5m").columns]


def _with_extras(families: list[str], cfg: FeaturesConfig, timeframe: str | None) -> list[str]:
    """``families`` followed by ``timeframe``'s extra inputs (the 5m timeframe's only)."""
    names = list(families)
    if timeframe == EXTRAS_TIMEFRAME:
        names += rz.har_names() if cfg.realized else []
        names += list(TIME_OF_WEEK_NAMES) if cfg.time_of_week else []
    return names


@dataclass(frozen=True)
class TimeframeFeatures:
    """Bars and raw features of every configured timeframe, built from one candle frame.

    bars: tf -> complete bars (open-time index, OHLCV, n_base), gaps kept as gaps.
    raw: tf -> float64 raw features (rows, F) indexed by bar open time, warm-up dropped,
        columns in ``features.names`` order (the same F for every timeframe).
    span: the base candles, for messages ("N 1m candles first .. last").
    seasonal: the training range's seasonal-EWMA fit the features (and, with
        ``data.target_scale: seasonal_ewma``, the targets) use; None when the config needs none.
    """

    bars: dict[str, pd.DataFrame]
    raw: dict[str, pd.DataFrame]
    span: str
    seasonal: SeasonalEwma | None = None

    def bar_close_ns(self, timeframe: str) -> np.ndarray:
        """(bars,) int64 close times (open + timeframe) of every complete bar of ``timeframe``."""
        open_ns = self.bars[timeframe].index.asi8
        return np.asarray(open_ns + timeframe_minutes(timeframe) * NS_PER_MIN)


def multi_timeframe_features(
    df: pd.DataFrame,
    config: SSSDConfig,
    *,
    check_history: bool = False,
    seasonal: SeasonalEwma | None = None,
) -> TimeframeFeatures:
    """Base candles ``df`` -> bars -> raw features of every configured timeframe.

    The one feature-assembly path: ``unified_feature_pipeline`` and the dataset both use it.

    Args:
        df: base candles (config.asset.base_timeframe), UTC open-time index.
        check_history: before computing features, require every timeframe to have the bars
            of ``required_history`` (warm-up + lookback).
        seasonal: the model's seasonal-EWMA fit (``seasonal_of`` its standardizer); None with a
            config that needs one fits it on the training split of these candles (training).

    Raises:
        DataError: bad candles, or (``check_history``) too little history for the lookbacks,
            naming per timeframe the bars needed and the bars given.
    """
    base = config.asset.base_timeframe
    candles = prepare_candles(df, base)
    span = f"{len(candles)} {base} candles {candles.index[0]} .. {candles.index[-1]}"
    bars = build_bars(candles, config.data.timeframes, base)
    if config.features.realized:
        five = bars[EXTRAS_TIMEFRAME]
        rv = rz.bar_realized_variance(candles, EXTRAS_TIMEFRAME).reindex(five.index)
        bars[EXTRAS_TIMEFRAME] = five.assign(rv=rv.to_numpy(dtype=np.float64))
    del candles
    if check_history:
        needed = required_history(config)
        counts = {tf: len(b) for tf, b in bars.items()}
        if any(counts[tf] < needed[tf] for tf in needed):
            shortfall = history_shortfall(needed, counts, history_warmups(config))
            raise DataError(
                f"too little history for the lookbacks: {shortfall} ({span}). "
                "Provide more candles (earlier start) or reduce data.lookbacks."
            )
    if seasonal is None and needs_seasonal(config):
        seasonal = fit_seasonal(bars[EXTRAS_TIMEFRAME], config)
    raw = {
        tf: compute_timeframe_features(b, tf, config.features, base, seasonal)
        for tf, b in bars.items()
    }
    return TimeframeFeatures(bars, raw, span, seasonal if needs_seasonal(config) else None)


def fit_standardizer(
    frames: Mapping[str, pd.DataFrame], config: SSSDConfig, seasonal: SeasonalEwma | None = None
) -> Standardizer:
    """A standardizer fitted on the rows of the training split only, carrying ``seasonal``
    (the training range's seasonal-EWMA fit) in its meta when given."""
    train = config.data.splits.train.utc_range("train")
    return with_seasonal(Standardizer.fit(frames, start=train.start, end=train.end), seasonal)


def decision_grid(close_ns: np.ndarray, stride: int) -> np.ndarray:
    """Decision times among 5m close times: those on the ``stride`` x 5 min clock grid."""
    return close_ns[(close_ns // (5 * NS_PER_MIN)) % stride == 0]


def latest_rows(open_ns: np.ndarray, timeframe: str, decision_ns: np.ndarray) -> np.ndarray:
    """Row of the last bar whose close (open + timeframe) is <= each decision time (-1: none)."""
    close_ns = open_ns + timeframe_minutes(timeframe) * NS_PER_MIN
    return np.searchsorted(close_ns, decision_ns, side="right") - 1


def unified_feature_pipeline(
    df: pd.DataFrame,
    config: SSSDConfig,
    output_format: OutputFormat = "flat",
    standardizer: Standardizer | None = None,
) -> tuple[pd.DataFrame | dict[str, pd.DataFrame], Standardizer, list[str] | dict[str, list[str]]]:
    """Standardized causal features of base candles ``df``.

    Args:
        df: base candles (config.asset.base_timeframe), UTC open-time index.
        config: full configuration (data.timeframes, features, splits.train, asset).
        output_format:
            * ``"multi_timeframe"``: {tf: float32 frame (bars, F)} indexed by bar open time,
              each from that timeframe's own bars; names: {tf: [F names]}.
            * ``"sequence"``: the 5m frame (first data timeframe); names: [F names].
            * ``"flat"``: one row per decision time t (5m closes on the decision_stride grid)
              indexed by t, columns ``"{tf}_{name}"`` = values of each timeframe's last bar
              that closed at or before t; rows before every timeframe has such a bar dropped.
        standardizer: apply this fitted standardizer (never refitted); if None, one is fitted
            on the rows of the training split (data.splits.train) only.

    Returns:
        (features, standardizer, feature_names).

    Raises:
        DataError: bad candles, too few rows in the training split, mismatching names.
    """
    if not isinstance(config, SSSDConfig):
        raise ConfigError(
            f"unified_feature_pipeline needs the full SSSDConfig (load_sssd_config(...)), got "
            f"{type(config).__name__}: the timeframes, splits and asset sections are used too"
        )
    if output_format not in ("flat", "sequence", "multi_timeframe"):
        raise ValueError(
            f"output_format must be 'flat', 'sequence' or 'multi_timeframe', got {output_format!r}"
        )
    seasonal = None if standardizer is None else seasonal_of(standardizer, config)
    built = multi_timeframe_features(df, config, seasonal=seasonal)
    if standardizer is None:
        standardizer = fit_standardizer(built.raw, config, built.seasonal)
    frames = standardizer.transform(built.raw)
    names = {tf: list(f.columns) for tf, f in frames.items()}
    first = config.data.timeframes[0]
    if output_format == "multi_timeframe":
        return frames, standardizer, names
    if output_format == "sequence":
        return frames[first], standardizer, names[first]
    decision_ns = decision_grid(
        frames[first].index.asi8 + timeframe_minutes(first) * NS_PER_MIN,
        config.data.decision_stride,
    )
    rows = {tf: latest_rows(f.index.asi8, tf, decision_ns) for tf, f in frames.items()}
    keep = np.logical_and.reduce([r >= 0 for r in rows.values()])
    blocks = []
    for tf, frame in frames.items():
        block = frame.to_numpy()[rows[tf][keep]]
        blocks.append(pd.DataFrame(block, columns=[f"{tf}_{n}" for n in frame.columns]))
    flat = pd.concat(blocks, axis=1)
    flat.index = pd.DatetimeIndex(pd.to_datetime(decision_ns[keep], utc=True), name="decision_time")
    return flat, standardizer, list(flat.columns)
