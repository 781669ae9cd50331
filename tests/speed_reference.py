"""The fixed-seed forecast and training steps that the speed-ups must leave unchanged (see
test_speed_paths.py).

``python tests/speed_reference.py`` rewrites ``tests/data/forecast_reference_tiny.json`` and
``tests/data/training_reference_tiny.json`` from the code on PYTHONPATH (run it on the baseline
commit to refresh the references).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from forex_diffusion.models.build import build_sssd_model
from sssd_test_utils import TINY_FEATURE_DIMS, random_features, tiny_config

REFERENCE = Path(__file__).resolve().parent / "data" / "forecast_reference_tiny.json"
TRAINING_REFERENCE = Path(__file__).resolve().parent / "data" / "training_reference_tiny.json"


def fixed_seed_forecast() -> torch.Tensor:
    """Samples (2, 4, 16) of a tiny model with a random output layer, dpmpp_2m 20 steps."""
    torch.manual_seed(0)
    config = tiny_config()
    model = build_sssd_model(config, TINY_FEATURE_DIMS).eval()
    with torch.no_grad():
        model.head.out.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    feats = random_features(config, TINY_FEATURE_DIMS, 2, seed=2)
    out = model.inference_forward(feats, 16, "dpmpp_2m", 20, 0.0, torch.Generator().manual_seed(3))
    return out.samples


def fixed_seed_training_losses(steps: int = 4) -> list[float]:
    """Losses of ``steps`` AdamW steps of a tiny model with dropout in every encoder block (so
    the losses after the first depend on every dropout mask), plus the sum of the weights."""
    torch.manual_seed(0)
    config = tiny_config(["model.encoder.dropout=0.3", "model.encoder.n_layers=3"])
    model = build_sssd_model(config, TINY_FEATURE_DIMS).train()
    feats = random_features(config, TINY_FEATURE_DIMS, 8, seed=2)
    targets = torch.randn(
        8, len(config.data.horizons), 1, generator=torch.Generator().manual_seed(3)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(4)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = model(feats, targets, generator=generator).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return [*losses, sum(p.detach().double().sum().item() for p in model.parameters())]


if __name__ == "__main__":
    torch.set_num_threads(1)
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(fixed_seed_forecast().tolist()))
    TRAINING_REFERENCE.write_text(json.dumps(fixed_seed_training_losses()))
