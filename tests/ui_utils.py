"""Shared set-up of the UI tests: a synthetic store, a tiny config, a model trained on it."""

from __future__ import annotations

from pathlib import Path

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.sssd_dataset import SSSDDataModule
from forex_diffusion.data.store import CandleStore
from forex_diffusion.data.synthetic import generate_synthetic_market
from forex_diffusion.training.train_sssd import SSSDTrainer
from training_utils import tiny_config

ASSET = "EURUSD"
EVAL_START, EVAL_END = "2021-03-22", "2021-03-24"  # after the test split's start: unseen


def synthetic_config(root: Path, *extra: str) -> SSSDConfig:
    """The tiny training config on a synthetic store of Feb 1 – Mar 27 2021 under ``root``."""
    return tiny_config(
        root,
        "data.splits.train.start=2021-02-01",
        "data.splits.train.end=2021-03-07",
        "data.splits.val.start=2021-03-09",
        "data.splits.val.end=2021-03-14",
        "data.splits.test.start=2021-03-16",
        "data.splits.test.end=2021-03-27",
        "training.epochs=1",
        "training.max_train_batches_per_epoch=4",
        "training.val_forecast_samples=8",
        "inference.num_samples=16",
        "evaluation.baselines=[rolling, ewma]",
        "evaluation.stride=24",
        *extra,
    )


def synthetic_store(root: Path) -> Path:
    """The synthetic 1-minute EURUSD candles of Feb 1 – Mar 27 2021 in a store under ``root``."""
    data_dir = root / "data"
    frame = generate_synthetic_market("2021-02-01", "2021-03-27", seed=11)
    CandleStore(data_dir).write(ASSET, frame, source="synthetic (seed 11)")
    return data_dir


def trained_synthetic(root: Path) -> SSSDConfig:
    """A synthetic store and a tiny model trained on it (best checkpoint registered)."""
    synthetic_store(root)
    cfg = synthetic_config(root)
    result = SSSDTrainer(cfg).train(SSSDDataModule(data_path=root / "data", config=cfg))
    assert result.best_checkpoint is not None
    return cfg
