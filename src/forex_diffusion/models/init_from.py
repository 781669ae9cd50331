"""Starting a model from another model's weights: fine-tuning a global model on a new asset.

The fine-tuned model is an ordinary per-asset model (no asset embedding). It starts exactly
where the global model serves an unseen asset: the unseen-asset row of the embedding is a
constant added to the context, and the context ends in a LayerNorm, so the row is folded into
that LayerNorm's bias (LN(x)·γ + β + e₀ = LN(x)·γ + (β + e₀)).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from forex_diffusion.config.sssd_config import SSSDConfig, config_from_dict
from forex_diffusion.models.checkpoint import LoadedCheckpoint

_CONTEXT_BIAS = "encoder.out_norm.bias"
_ASSET_ROWS = "asset_embedding.weight"


def fine_tune_config(config: SSSDConfig, source: LoadedCheckpoint) -> SSSDConfig:
    """``config`` with the network, features and window shapes of ``source`` (so its weights
    fit), as a per-asset model (``model.assets`` empty) keeping ``config``'s model name."""
    out = config.to_dict()
    src = source.config.to_dict()
    out["model"] = {**src["model"], "assets": [], "name": config.model.name}
    out["features"] = src["features"]
    for key in ("timeframes", "horizons", "lookbacks"):
        out["data"][key] = src["data"][key]
    return config_from_dict(out, source=f"{config.model.name} initialised from a checkpoint")


def per_asset_weights(source: LoadedCheckpoint) -> dict[str, Tensor]:
    """``source``'s weights for a per-asset model: a global model's unseen-asset row is folded
    into the context LayerNorm's bias and the embedding dropped; a per-asset model's weights
    are returned as they are."""
    state: dict[str, Any] = {k: v.detach().clone() for k, v in source.model.state_dict().items()}
    rows = state.pop(_ASSET_ROWS, None)
    if rows is not None:
        state[_CONTEXT_BIAS] = state[_CONTEXT_BIAS] + rows[0]
    return state
