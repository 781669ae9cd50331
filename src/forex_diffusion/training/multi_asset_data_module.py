"""The data module of a global model: one ``SSSDDataModule`` per asset, batches that mix them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loguru import logger

from forex_diffusion.config.sssd_config import SSSDConfig, config_for_asset
from forex_diffusion.dataset.multi_asset import MultiAssetDataset, per_asset_standardizers
from forex_diffusion.errors import ConfigError, DataError
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.training.data_module import SSSDDataModule


class MultiAssetDataModule(SSSDDataModule):
    """Per-asset feature sources and standardizers (each fitted on that asset's training range
    only, exactly as a per-asset model's), concatenated into train/val/test datasets whose
    samples carry their asset's embedding row; the loaders shuffle across assets.

    Args:
        data_path: candle store root.
        config: the global model's config; ``model.assets`` lists the assets (in embedding
            order) and ``data.splits`` are the same dates for every asset.
    """

    def __init__(self, data_path: str | Path | None, config: SSSDConfig) -> None:
        super().__init__(data_path=data_path, config=config)
        if len(config.model.assets) < 2:
            raise ConfigError(
                "a global model needs model.assets with two or more assets "
                "(e.g. `forex-diffusion train --global --assets EURUSD GBPUSD`)"
            )
        self.assets = list(config.model.assets)
        self.modules = {
            a: SSSDDataModule(data_path, config_for_asset(config, a)) for a in self.assets
        }
        self._multi: dict[str, MultiAssetDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self._multi:
            return
        names: dict[str, list[str]] | None = None
        for asset, module in self.modules.items():
            try:
                module.setup(stage)
            except DataError as exc:
                raise DataError(f"global model, asset {asset}: {exc}") from exc
            if names is None:
                names = module.feature_names
            elif module.feature_names != names:
                raise DataError(f"{asset}: its features differ from {self.assets[0]}'s")
            self.dropped[asset] = {k: sum(v.values()) for k, v in module.dropped.items()}
        for split in ("train", "val", "test"):
            parts = [
                (row, getattr(self.modules[a], f"{split}_dataset"))
                for row, a in enumerate(self.assets, start=1)
            ]
            self._multi[split] = MultiAssetDataset(parts)
            logger.info(
                "global {}: {} samples ({})",
                split,
                len(self._multi[split]),
                ", ".join(f"{a} {len(ds)}" for (_, ds), a in zip(parts, self.assets, strict=True)),
            )

    def _split(self, name: str) -> MultiAssetDataset:
        self.setup()
        return self._multi[name]

    @property
    def train_dataset(self) -> MultiAssetDataset:  # type: ignore[override]
        return self._split("train")

    @property
    def val_dataset(self) -> MultiAssetDataset:  # type: ignore[override]
        return self._split("val")

    @property
    def test_dataset(self) -> MultiAssetDataset:  # type: ignore[override]
        return self._split("test")

    @property
    def standardizer(self) -> Standardizer:
        raise AttributeError("a global model has one standardizer per asset: asset_standardizers")

    @property
    def asset_standardizers(self) -> dict[str, Standardizer]:
        """Each asset's standardizer, fitted on its own training range."""
        self.setup()
        return {a: m.standardizer for a, m in self.modules.items()}

    def standardizer_payload(self) -> dict[str, Any]:
        """What the checkpoint stores as the standardizer: one per asset."""
        return per_asset_standardizers(
            {a: s.to_dict() for a, s in self.asset_standardizers.items()}
        )

    @property
    def feature_names(self) -> dict[str, list[str]]:
        self.setup()
        return self.modules[self.assets[0]].feature_names
