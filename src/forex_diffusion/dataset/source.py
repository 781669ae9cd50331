"""What all samples built from one candle frame share: standardized contiguous float32
feature blocks per timeframe, and the 5m closes the targets are read from.

Feature dimension: each timeframe has F_tf features (``features.names`` expanded, plus the
5m extras of ``features.realized`` / ``features.time_of_week``), so a block's values are
(rows, F_tf).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.features.seasonal_fit import seasonal_of
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.unified_pipeline import (
    fit_standardizer,
    multi_timeframe_features,
    required_history,
)
from forex_diffusion.features.volatility import SeasonalEwma
from forex_diffusion.timeframes import NS_PER_MIN, timeframe_minutes


@dataclass(frozen=True)
class TimeframeBlock:
    """One timeframe's standardized features: values (rows, F) float32 C-contiguous and the
    bars' open times (rows,) int64 ns."""

    timeframe: str
    values: np.ndarray
    open_ns: np.ndarray
    lookback: int

    @property
    def close_ns(self) -> np.ndarray:
        return self.open_ns + timeframe_minutes(self.timeframe) * NS_PER_MIN


@dataclass(frozen=True)
class FeatureSource:
    """What all samples built from one candle frame share.

    blocks: timeframe -> TimeframeBlock (warm-up rows already dropped).
    close5_ns, close5: (M,) close times and close prices of every complete 5m bar (targets).
    bar_close_ns: close times of every complete bar per timeframe in the candles.
    target_seasonal: the training range's seasonal-EWMA fit that scales the targets
        (``data.target_scale: seasonal_ewma``); None: the EWMA scale.
    """

    blocks: dict[str, TimeframeBlock]
    feature_names: dict[str, list[str]]
    standardizer: Standardizer
    close5_ns: np.ndarray
    close5: np.ndarray
    bar_close_ns: dict[str, np.ndarray]
    needed: dict[str, int]
    candle_span: str
    target_seasonal: SeasonalEwma | None = None


def build_feature_source(
    df: pd.DataFrame, config: SSSDConfig, standardizer: Standardizer | None = None
) -> FeatureSource:
    """Bars, features and standardized contiguous float32 blocks of every timeframe.

    Args:
        df: base candles (config.asset.base_timeframe).
        standardizer: a fitted standardizer to apply (with the seasonal-EWMA fit it carries
            when the config needs one); None fits one, and that fit, on the training split.

    Raises:
        DataError: bad candles, or too little history for the lookbacks (naming, per
            timeframe, the bars needed and the bars given).
        CheckpointError: the config needs a seasonal-EWMA fit the standardizer lacks.
    """
    seasonal = None if standardizer is None else seasonal_of(standardizer, config)
    assembled = multi_timeframe_features(df, config, check_history=True, seasonal=seasonal)
    seasonal = assembled.seasonal
    first = config.data.timeframes[0]
    bar_close_ns = {tf: assembled.bar_close_ns(tf) for tf in config.data.timeframes}
    close5 = assembled.bars[first]["close"].to_numpy(dtype=np.float64).copy()
    raw, span = assembled.raw, assembled.span
    del assembled  # the bars are no longer needed
    if standardizer is None:
        standardizer = fit_standardizer(raw, config, seasonal)
    blocks: dict[str, TimeframeBlock] = {}
    names: dict[str, list[str]] = {}
    for tf in config.data.timeframes:
        frame = raw.pop(tf)
        values = standardizer.transform_values(
            tf, frame.to_numpy(dtype=np.float64, copy=True), list(frame.columns), inplace=True
        )
        blocks[tf] = TimeframeBlock(tf, values, frame.index.asi8.copy(), config.data.lookbacks[tf])
        names[tf] = list(standardizer.feature_names(tf))
        del frame
    return FeatureSource(
        blocks,
        names,
        standardizer,
        bar_close_ns[first],
        close5,
        bar_close_ns,
        required_history(config),
        span,
        seasonal if config.data.target_scale == "seasonal_ewma" else None,
    )
