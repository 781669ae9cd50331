"""Shared set-up of the scale-out tests: a synthetic candle store of several assets and the
overrides of a tiny, quick configuration over it."""

from __future__ import annotations

from pathlib import Path

from forex_diffusion.data.store import CandleStore
from forex_diffusion.data.synthetic import generate_synthetic_market
from training_utils import TINY

SPLITS = [
    "data.splits.train.start=2021-01-04",
    "data.splits.train.end=2021-01-29",
    "data.splits.val.start=2021-02-02",
    "data.splits.val.end=2021-02-12",
    "data.splits.test.start=2021-02-16",
    "data.splits.test.end=2021-02-19",
]


def synthetic_store(root: Path, assets: list[str]) -> Path:
    """A candle store under ``root/data`` with seven weeks of synthetic 1-minute candles per
    asset (one seed each)."""
    data_dir = root / "data"
    store = CandleStore(data_dir)
    for i, asset in enumerate(assets):
        if not (data_dir / asset).exists():
            df = generate_synthetic_market("2021-01-01", "2021-02-20", seed=100 + i)
            store.write(asset, df, source=f"synthetic seed {100 + i}")
    return data_dir


def scale_overrides(root: Path, *extra: str) -> list[str]:
    """TINY shrunk further (few batches, small validation), every path under ``root``."""
    return [
        *TINY,
        "data.decision_stride=12",
        "training.batch_size=32",
        "training.max_train_batches_per_epoch=4",
        "training.val_forecast_samples=8",
        "training.epochs=2",
        "training.checkpoint={every_n_epochs: 1, keep_best_only: true}",
        f"paths.data_dir={root / 'data'}",
        f"paths.artifacts_dir={root}",
        f"paths.checkpoint_dir={root / 'checkpoints'}",
        f"paths.log_dir={root / 'logs'}",
        f"paths.reports_dir={root / 'reports'}",
        *SPLITS,
        *extra,
    ]


def cli_overrides(overrides: list[str]) -> list[str]:
    """``--override X`` for each override."""
    return [arg for item in overrides for arg in ("--override", item)]
