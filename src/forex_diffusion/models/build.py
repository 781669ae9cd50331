"""The network an application config describes: its model section, timeframes and horizons."""

from __future__ import annotations

from collections.abc import Mapping

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.models.sssd import SSSDModel


def build_sssd_model(config: SSSDConfig, feature_dims: Mapping[str, int]) -> SSSDModel:
    """``SSSDModel`` for ``config.model`` over ``config.data.timeframes``/``horizons``.

    Args:
        config: the application config (only its model section and data shapes are used).
        feature_dims: number of features per timeframe (the feature pipeline's output).
    """
    return SSSDModel(
        config.model,
        timeframes=config.data.timeframes,
        feature_dims=feature_dims,
        horizons=config.data.horizons,
    )


def built_from(model: SSSDModel, config: SSSDConfig) -> bool:
    """Whether ``model`` has the architecture ``build_sssd_model(config, ...)`` gives."""
    return (
        model.config == config.model
        and model.timeframes == tuple(config.data.timeframes)
        and model.horizons == tuple(config.data.horizons)
    )
