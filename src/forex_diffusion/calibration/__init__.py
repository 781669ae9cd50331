"""Calibration of predictive distributions: quantile recalibration and adaptive conformal."""

from forex_diffusion.calibration.conformal import AdaptiveConformal
from forex_diffusion.calibration.quantile_map import QuantileRecalibrator, pit_values

__all__ = ["AdaptiveConformal", "QuantileRecalibrator", "pit_values"]
