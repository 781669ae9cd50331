"""Shared set-up of the service tests: a real-data store, a tiny trained model, settings."""

from __future__ import annotations

from pathlib import Path

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.sssd_dataset import SSSDDataModule
from forex_diffusion.data.store import CandleStore
from forex_diffusion.service.settings import ServiceSettings
from forex_diffusion.training.train_sssd import SSSDTrainer
from fx_test_utils import load_fx
from training_utils import tiny_config

STORE_END = "2019-03-18"  # the store holds EURUSD 2019-01-01 .. 2019-03-17; a week follows
TOKEN = "test-token-0123456789abcdef"


def trained_root(fx_dir: Path, root: Path) -> SSSDConfig:
    """A store of EURUSD Jan 1 – Mar 17 2019 under ``root`` and a tiny model trained on it."""
    data_dir = root / "data"
    CandleStore(data_dir).write("EURUSD", load_fx(fx_dir, "2019-01-01", STORE_END), source="test")
    cfg = tiny_config(
        root,
        "training.epochs=1",
        "training.max_train_batches_per_epoch=4",
        "data.splits.val.end=2019-03-15",
        "inference.num_samples=16",
        # 5m candles in a request body need a model without the 1m HAR inputs
        "features.realized=false",
    )
    result = SSSDTrainer(cfg).train(SSSDDataModule(data_path=data_dir, config=cfg))
    assert result.best_checkpoint is not None
    return cfg


def settings(config: SSSDConfig, **kwargs: object) -> ServiceSettings:
    return ServiceSettings(config=config, device="cpu", **kwargs)  # type: ignore[arg-type]
