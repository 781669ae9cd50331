"""scikit-learn integration: SSSD as a regressor, purged CV, a reweighted stack, a CRPS pool."""

from forex_diffusion.ensemble.purged_split import PurgedTimeSeriesSplit
from forex_diffusion.ensemble.sssd_wrapper import SSSDWrapper
from forex_diffusion.ensemble.stacking import StackingForecaster, StackPrediction, default_members
from forex_diffusion.models.pool import LinearPool, fit_linear_pool, pool_forecast

__all__ = [
    "LinearPool",
    "PurgedTimeSeriesSplit",
    "SSSDWrapper",
    "StackPrediction",
    "StackingForecaster",
    "default_members",
    "fit_linear_pool",
    "pool_forecast",
]
