"""Calibration of predictive distributions: quantile recalibration (per horizon, or per horizon
and trading session) and adaptive conformal."""

from forex_diffusion.calibration.conformal import AdaptiveConformal
from forex_diffusion.calibration.quantile_map import QuantileRecalibrator, pit_values
from forex_diffusion.calibration.session_map import (
    Recalibrator,
    SessionRecalibrator,
    load_recalibrator,
    pooled_location,
)

__all__ = [
    "AdaptiveConformal",
    "QuantileRecalibrator",
    "Recalibrator",
    "SessionRecalibrator",
    "load_recalibrator",
    "pit_values",
    "pooled_location",
]
