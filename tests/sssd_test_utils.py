"""Small SSSD configurations and inputs shared by the model tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from forex_diffusion.config.sssd_config import SSSDConfig, config_from_dict, load_sssd_config

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "sssd" / "default_config.yaml"

TINY_OVERRIDES = (
    "data.lookbacks={5m: 24, 15m: 12, 1h: 6, 4h: 3}",
    "model.encoder.d_model=16",
    "model.encoder.n_layers=2",
    "model.encoder.state_dim=8",
    "model.encoder.attention_heads=2",
    "model.encoder.context_dim=32",
    "model.encoder.dropout=0.0",
    "model.horizon_embedding_dim=8",
    "model.head.hidden_dim=32",
    "model.head.n_blocks=2",
    "model.head.timestep_embedding_dim=16",
)

TINY_FEATURE_DIMS = {"5m": 3, "15m": 2, "1h": 2, "4h": 1}


def tiny_config(extra: Sequence[str] = ()) -> SSSDConfig:
    """The default config shrunk to a few thousand parameters (plus ``extra`` overrides)."""
    return load_sssd_config(DEFAULT_CONFIG, overrides=[*TINY_OVERRIDES, *extra])


def with_timeframes(config: SSSDConfig, lookbacks: dict[str, int]) -> SSSDConfig:
    """``config`` with ``data.timeframes``/``data.lookbacks`` replaced (ordered as given)."""
    data = config.to_dict()
    data["data"]["timeframes"] = list(lookbacks)
    data["data"]["lookbacks"] = dict(lookbacks)
    return config_from_dict(data)


def default_config(extra: Sequence[str] = ()) -> SSSDConfig:
    return load_sssd_config(DEFAULT_CONFIG, overrides=list(extra))


def random_features(
    config: SSSDConfig,
    feature_dims: dict[str, int],
    batch: int,
    seed: int = 0,
    extra_bars: int = 0,
) -> dict[str, torch.Tensor]:
    """{tf: (batch, lookback + extra_bars, F_tf)} standard normal features."""
    g = torch.Generator().manual_seed(seed)
    return {
        tf: torch.randn(
            batch, config.data.lookbacks[tf] + extra_bars, feature_dims[tf], generator=g
        )
        for tf in config.data.timeframes
    }
