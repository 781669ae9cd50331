"""The Lightning DataModule: candle store -> feature source -> train/val/test datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from loguru import logger
from torch.utils.data import DataLoader

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.data.store import CandleStore, resolve_data_dir
from forex_diffusion.dataset.candidates import Candidates
from forex_diffusion.dataset.collate import FeatureBatch, collate_fn
from forex_diffusion.dataset.source import FeatureSource, build_feature_source
from forex_diffusion.dataset.splits import config_splits, split_dataset
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.errors import ConfigError, DataError
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.unified_pipeline import decision_grid
from forex_diffusion.training.sampler import EpochShuffleSampler


class SSSDDataModule(L.LightningDataModule):
    """Candle store -> features -> standardizer fitted on train -> train/val/test datasets.

    Args:
        data_path: candle store root (data dir); None = config.paths.data_dir (or the
            FOREX_DIFFUSION_DATA_DIR environment variable, via ``resolve_data_dir``).
        config: the full configuration (asset.symbol is the asset read from the store).
        candles: in-memory base candles to use instead of the store.
        asset: overrides config.asset.symbol (one module per asset).

    ``standardizer``, ``feature_names``, ``input_dims``, ``train_dataset``/``val_dataset``/
    ``test_dataset`` (each access runs :meth:`setup` once if needed) and, after setup,
    ``dropped`` {split: {reason: count}}. Train/val/test share one feature source (views).
    """

    def __init__(
        self,
        data_path: str | Path | None = None,
        config: SSSDConfig | None = None,
        *,
        candles: pd.DataFrame | None = None,
        asset: str | None = None,
    ) -> None:
        super().__init__()
        if config is None:
            raise ConfigError(
                "SSSDDataModule needs config=load_sssd_config(...) (the data, features and "
                "training sections drive it)"
            )
        self.config = config
        self.data_path = data_path
        self.asset = asset or config.asset.symbol
        self._candles = candles
        self._source: FeatureSource | None = None
        self._splits: dict[str, SSSDTimeSeriesDataset] = {}
        self.dropped: dict[str, dict[str, int]] = {}

    def _load_candles(self) -> pd.DataFrame:
        if self._candles is not None:
            return self._candles
        root = resolve_data_dir(self.config, self.data_path)
        end = config_splits(self.config)[-1].end
        return CandleStore(root).load(
            self.asset, start=None, end=end, timeframe=self.config.asset.base_timeframe
        )

    def setup(self, stage: str | None = None) -> None:
        if self._source is not None:
            return
        candles = self._load_candles()
        source = build_feature_source(candles, self.config, standardizer=None)
        del candles
        cand = Candidates.evaluate(
            source,
            decision_grid(source.close5_ns, self.config.data.decision_stride),
            self.config.data.horizons,
            self.config.features.vol_ewma_lambda,
        )
        splits = split_dataset(source, cand, self.config)
        for name, ds in splits.items():
            self.dropped[name] = ds.dropped
            logger.info("{} {}: {} samples; dropped {}", self.asset, name, len(ds), ds.dropped)
        ranges = {r.name: r for r in config_splits(self.config)}
        for name in ("train", "val"):
            if len(splits[name]) == 0:
                r = ranges[name]
                raise DataError(
                    f"{self.asset}: the {name} split [{r.start}, {r.end}) has no samples (dropped: "
                    f"{splits[name].dropped}; {source.candle_span}). Adjust data.splits to "
                    "the dates the candles cover."
                )
        if len(splits["test"]) == 0:
            logger.warning(
                "{}: the test split has no samples ({})", self.asset, splits["test"].dropped
            )
        self._source = source
        self._splits = splits

    def _ready(self) -> FeatureSource:
        self.setup()
        assert self._source is not None
        return self._source

    @property
    def train_dataset(self) -> SSSDTimeSeriesDataset:
        """Training samples (builds everything on first access)."""
        self._ready()
        return self._splits["train"]

    @property
    def val_dataset(self) -> SSSDTimeSeriesDataset:
        self._ready()
        return self._splits["val"]

    @property
    def test_dataset(self) -> SSSDTimeSeriesDataset:
        self._ready()
        return self._splits["test"]

    @property
    def standardizer(self) -> Standardizer:
        """The standardizer fitted on the training split (save its ``to_dict()``)."""
        return self._ready().standardizer

    def standardizer_payload(self) -> dict[str, Any]:
        """What the checkpoint stores as the standardizer (``Standardizer.to_dict()``)."""
        return self.standardizer.to_dict()

    @property
    def feature_names(self) -> dict[str, list[str]]:
        return {tf: list(n) for tf, n in self._ready().feature_names.items()}

    @property
    def input_dims(self) -> dict[str, int]:
        """Features per timeframe (F)."""
        return {tf: len(n) for tf, n in self.feature_names.items()}

    def _shard(self) -> tuple[int, int]:
        """(world size, global rank) of the attached trainer; (1, 0) outside a fit."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(self, ds: SSSDTimeSeriesDataset, shuffle: bool) -> DataLoader[FeatureBatch]:
        """Training batches shard by rank (``training.batch_size`` per process); validation and
        test are whole on every rank (deterministic, so every rank logs the same metrics)."""
        workers = self.config.data.num_workers
        replicas, rank = self._shard()
        sampler = (
            EpochShuffleSampler(len(ds), self.config.seed, replicas, rank) if shuffle else None
        )
        return DataLoader(
            ds,
            batch_size=self.config.training.batch_size,
            sampler=sampler,
            # the loader draws its workers' base seed from this generator, not from the global
            # RNG, so the training noise stream does not depend on when the iterator is created
            generator=torch.Generator().manual_seed(self.config.seed),
            num_workers=workers,
            collate_fn=collate_fn,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader[FeatureBatch]:
        """Shuffled with a generator seeded by config.seed (reproducible epochs)."""
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader[FeatureBatch]:
        """Deterministic: decision-time order."""
        return self._loader(self.val_dataset, shuffle=False)

    def test_dataloader(self) -> DataLoader[FeatureBatch]:
        return self._loader(self.test_dataset, shuffle=False)
