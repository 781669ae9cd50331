"""Shared set-up of the training tests: a small real-data store and a tiny config."""

from __future__ import annotations

from pathlib import Path

import torch

from forex_diffusion.config.sssd_config import DEFAULT_CONFIG_PATH, SSSDConfig, load_sssd_config
from forex_diffusion.data.store import CandleStore
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.lightning_module import SSSDLightningModule
from fx_test_utils import load_fx

TINY = [
    "data.lookbacks={5m: 48, 15m: 16, 1h: 8, 4h: 4}",
    "data.decision_stride=3",
    "model.encoder.d_model=16",
    "model.encoder.n_layers=1",
    "model.encoder.state_dim=8",
    "model.encoder.attention_heads=2",
    "model.encoder.context_dim=32",
    "model.horizon_embedding_dim=8",
    "model.head.hidden_dim=32",
    "model.head.n_blocks=2",
    "model.head.timestep_embedding_dim=16",
    "training.batch_size=64",
    "training.learning_rate=0.003",
    "training.ssm_learning_rate=0.003",
    "training.warmup_steps=5",
    "training.max_train_batches_per_epoch=12",
    "training.val_forecast_samples=16",
    "training.precision=32",
    "inference.steps=5",
]


def two_month_store(fx_dir: Path, root: Path) -> Path:
    """A store holding EURUSD Jan–Mar 2019 (real data read in place, written under ``root``)."""
    data_dir = root / "data"
    if not (data_dir / "EURUSD").exists():
        df = load_fx(fx_dir, "2019-01-01", "2019-04-01")
        CandleStore(data_dir).write("EURUSD", df, source="EURUSD_M1_2019.csv.gz (Jan-Mar)")
    return data_dir


def tiny_overrides(root: Path, *extra: str) -> list[str]:
    """The overrides of :func:`tiny_config` (for code that builds its own config from them)."""
    return [
        *TINY,
        f"paths.data_dir={root / 'data'}",
        f"paths.artifacts_dir={root}",
        f"paths.checkpoint_dir={root / 'checkpoints'}",
        f"paths.log_dir={root / 'logs'}",
        f"paths.reports_dir={root / 'reports'}",
        "data.splits.train.start=2019-01-01",
        "data.splits.train.end=2019-02-28",
        "data.splits.val.start=2019-03-04",
        "data.splits.val.end=2019-03-31",
        "data.splits.test.start=2019-04-01",
        "data.splits.test.end=2019-04-30",
        "training.epochs=2",
        *extra,
    ]


def tiny_config(root: Path, *extra: str, preset: str | None = "cpu_small") -> SSSDConfig:
    """The cpu preset shrunk further, with every path under ``root``."""
    return load_sssd_config(
        DEFAULT_CONFIG_PATH, overrides=tiny_overrides(root, *extra), preset=preset
    )


def val_loss(module: SSSDLightningModule, dm: SSSDDataModule) -> float:
    """Deterministic validation loss (the module's own fixed-noise validation_step)."""
    module.eval()
    losses, sizes = [], []
    with torch.no_grad():
        for i, batch in enumerate(dm.val_dataloader()):
            features, targets, hidx = batch
            gen = torch.Generator().manual_seed(1_000_003 + i)
            t, eps = module.model.draw_noise(targets.shape[0], generator=gen)
            losses.append(float(module.model(features, targets, hidx, timesteps=t, noise=eps).loss))
            sizes.append(targets.shape[0])
    return sum(loss * n for loss, n in zip(losses, sizes, strict=True)) / sum(sizes)
