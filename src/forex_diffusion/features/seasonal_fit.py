"""A model's seasonal-EWMA fit: fitted on the training range only, saved with the standardizer.

``data.target_scale: seasonal_ewma`` (the target scale) and ``features.time_of_week`` (the slot
scale input) both use one ``SeasonalEwma`` fitted on the 5m returns of the training split
(bars that opened at or after its start and closed at or before its end), with the settings
of the evaluation's ``ewma_seasonal`` baseline. It travels inside the standardizer's ``meta``
(the checkpoint's ``standardizer_json``), so every path that builds features with the
checkpoint's standardizer (inference, calibration, evaluation, live windows) uses the training
fit and never refits.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.errors import CheckpointError, DataError
from forex_diffusion.features.standardizer import Standardizer, fit_mask
from forex_diffusion.features.volatility import TUNE_BURN_IN, SeasonalEwma, returns_of_bars

META_KEY = "seasonal_ewma"


def needs_seasonal(config: SSSDConfig) -> bool:
    """The configuration uses the seasonal-EWMA fit (target scale or time-of-week input)."""
    return config.data.target_scale == "seasonal_ewma" or config.features.time_of_week


def fit_seasonal(bars5: pd.DataFrame, config: SSSDConfig) -> SeasonalEwma:
    """Fit on the 5m bars (open-time index, ``close``) inside the training split only.

    Raises:
        DataError: fewer than two days of contiguous 5m returns in the training split.
    """
    train = config.data.splits.train.utc_range("train")
    inside = fit_mask(bars5.index, "5m", train.start, train.end)
    rs = returns_of_bars(
        bars5.index.as_unit("ns").asi8[inside],
        bars5["close"].to_numpy(dtype=np.float64)[inside],
        where="training 5m bars",
    )
    if rs.returns.size < 2 * TUNE_BURN_IN:
        raise DataError(
            f"the seasonal-EWMA fit (data.target_scale=seasonal_ewma or features.time_of_week) "
            f"has only {rs.returns.size} contiguous 5m returns in the training split "
            f"[{train.start}, {train.end}); it needs {2 * TUNE_BURN_IN}. Extend the data or "
            "data.splits.train."
        )
    ev = config.evaluation
    return SeasonalEwma.fit(
        rs.returns,
        rs.label_ns,
        ev.ewma_lambdas,
        ev.ewma_objective,
        ev.seasonal_slot_minutes,
        ev.seasonal_prior_count,
    )


def with_seasonal(standardizer: Standardizer, fit: SeasonalEwma | None) -> Standardizer:
    """The standardizer carrying ``fit`` in its meta (unchanged when ``fit`` is None)."""
    if fit is None:
        return standardizer
    return dataclasses.replace(standardizer, meta={**standardizer.meta, META_KEY: fit.to_dict()})


def seasonal_of(standardizer: Standardizer, config: SSSDConfig) -> SeasonalEwma | None:
    """The fit stored with a model's standardizer; None when the configuration needs none.

    Raises:
        CheckpointError: the configuration needs the fit and the standardizer has none.
    """
    if not needs_seasonal(config):
        return None
    data = standardizer.meta.get(META_KEY)
    if data is None:
        raise CheckpointError(
            "the configuration uses the seasonal-EWMA fit (data.target_scale=seasonal_ewma or "
            "features.time_of_week) but the standardizer carries none; it was not fitted with "
            "this configuration. Re-train the model, or build the standardizer with "
            "fit_standardizer(..., seasonal=...)."
        )
    return SeasonalEwma.from_dict(data, where="standardizer meta (seasonal EWMA)")
