"""The four identity configs of a model, cut from a full application config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the config module pulls in pandas; the registry needs only its sections
    from forex_diffusion.config.sssd_config import SSSDConfig

CONFIG_FIELDS = ("architecture_config", "training_config", "feature_config", "horizon_config")
# where and how a model is trained, not what it is: left out of its identity, so the same model
# trained on one device or on several nodes (or logged to MLflow or not) is one registry row
EXECUTION_KEYS = ("devices", "num_nodes", "strategy", "mlflow_uri")


def model_configs_from_sssd(config: SSSDConfig) -> dict[str, dict[str, Any]]:
    """The four identity configs of a model, cut from a full SSSDConfig.

    architecture: the ``model`` section; training: the ``training`` section less its
    ``EXECUTION_KEYS``; features: the
    ``features`` section plus base timeframe, timeframes and lookbacks; horizons: the horizons.
    """
    full = config.to_dict()
    return {
        "architecture_config": full["model"],
        "training_config": {k: v for k, v in full["training"].items() if k not in EXECUTION_KEYS},
        "feature_config": {
            **full["features"],
            "base_timeframe": full["asset"]["base_timeframe"],
            "timeframes": full["data"]["timeframes"],
            "lookbacks": full["data"]["lookbacks"],
        },
        "horizon_config": {"horizons": full["data"]["horizons"]},
    }
