"""Samples of several assets in one dataset, for a global model (one network, many pairs).

Each asset keeps its own ``SSSDTimeSeriesDataset`` (its own feature source and standardizer,
fitted on its own training range); this dataset only numbers their samples one after the other
and adds the asset's embedding row to each sample's features under ``ASSET_KEY``, so that a
shuffled batch mixes assets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from forex_diffusion.dataset.collate import ASSET_KEY, FeatureBatch, PrebatchedSamples
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset

GLOBAL_ASSET = "GLOBAL"
"""Registry asset name (and checkpoint folder) of global models."""

PER_ASSET = "per_asset"
"""``kind`` of a global model's standardizer payload: ``{"kind": PER_ASSET, "assets": {...}}``."""


class MultiAssetDataset(Dataset[FeatureBatch]):
    """The samples of ``parts`` in order: asset a's samples follow those of the assets before it.

    Args:
        parts: (asset embedding row, dataset) pairs; rows are ``SSSDModel.asset_index(name)``.
    """

    def __init__(self, parts: Sequence[tuple[int, SSSDTimeSeriesDataset]]) -> None:
        if not parts:
            raise ValueError("MultiAssetDataset needs at least one asset")
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(ds) for _, ds in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(part, row inside that part's dataset) of a global sample index."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of {len(self)}")
        part = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return part, int(index - self.offsets[part])

    def __getitem__(self, index: int) -> FeatureBatch:
        part, row = self.locate(int(index))
        asset, ds = self.parts[part]
        feats, target, hidx = ds[row]
        return {**feats, ASSET_KEY: torch.tensor(asset)}, target, hidx

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> FeatureBatch:
        """({tf: (B, L, F), ASSET_KEY: (B,)}, targets (B, H, 1), horizon indices (B, H)) in the
        order of ``indices``; each asset's rows are fetched in one ``get_batch`` of its own."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            raise ValueError("get_batch got no indices")
        if idx.min() < 0 or idx.max() >= len(self):
            raise IndexError(f"sample indices must lie in [0, {len(self)})")
        part_of = np.searchsorted(self.offsets, idx, side="right") - 1
        chunks: list[tuple[np.ndarray, int, FeatureBatch]] = []
        for part in np.unique(part_of):
            where = np.flatnonzero(part_of == part)
            asset, ds = self.parts[int(part)]
            chunks.append((where, asset, ds.get_batch(idx[where] - self.offsets[part])))
        # rows come grouped by asset; ``order`` puts them back in the order of ``indices``
        order = torch.from_numpy(np.argsort(np.concatenate([w for w, _, _ in chunks])))
        feats = {tf: torch.cat([b[0][tf] for *_, b in chunks])[order] for tf in chunks[0][2][0]}
        feats[ASSET_KEY] = torch.cat([torch.full((len(w),), a) for w, a, _ in chunks])[order]
        targets = torch.cat([b[1] for *_, b in chunks])[order]
        hidx = torch.cat([b[2] for *_, b in chunks])[order]
        return feats, targets, hidx

    def __getitems__(self, indices: Sequence[int]) -> PrebatchedSamples:
        return PrebatchedSamples(self.get_batch(indices))


def per_asset_standardizers(standardizers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The standardizer payload of a global model's checkpoint: one standardizer per asset."""
    return {"kind": PER_ASSET, "assets": {a: dict(s) for a, s in standardizers.items()}}


def asset_standardizer(payload: Mapping[str, Any], asset: str) -> dict[str, Any] | None:
    """The standardizer dict of ``asset`` in a global model's payload (None: not trained on it)."""
    if payload.get("kind") != PER_ASSET:
        raise ValueError("this checkpoint's standardizer is not a global model's per-asset one")
    found = payload["assets"].get(asset.strip().upper())
    return None if found is None else dict(found)


def per_asset_calibrations(maps: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The calibration payload of a global model's checkpoint: one map per asset."""
    return {"kind": PER_ASSET, "assets": {a: dict(m) for a, m in maps.items()}}


def asset_calibration(payload: Mapping[str, Any] | None, asset: str) -> dict[str, Any] | None:
    """``asset``'s map in a global model's calibration payload (None: none for it)."""
    if payload is None:
        return None
    found = payload.get("assets", {}).get(asset.strip().upper())
    return None if found is None else dict(found)
