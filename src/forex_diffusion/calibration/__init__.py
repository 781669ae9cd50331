"""Calibration of predictive distributions: quantile recalibration (per horizon, or per horizon
and cell: trading session or phase of the hour) and adaptive conformal."""

from forex_diffusion.calibration.cell_map import (
    GROUPINGS,
    CellRecalibrator,
    Recalibrator,
    load_recalibrator,
    pooled_location,
)
from forex_diffusion.calibration.conformal import AdaptiveConformal
from forex_diffusion.calibration.quantile_map import QuantileRecalibrator, pit_values

__all__ = [
    "GROUPINGS",
    "AdaptiveConformal",
    "CellRecalibrator",
    "QuantileRecalibrator",
    "Recalibrator",
    "load_recalibrator",
    "pit_values",
    "pooled_location",
]
