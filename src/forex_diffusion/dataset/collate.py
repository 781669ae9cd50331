"""Collation of samples into batches: ({tf: (B, L_tf, F)}, targets (B, H, 1),
horizon_indices (B, H))."""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import torch

FeatureBatch = tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]

ASSET_KEY = "asset"
"""Key of a global model's asset indices (B,) beside the timeframe windows in a features dict."""


class PrebatchedSamples(Sequence[FeatureBatch]):
    """The samples of one batch whose tensors are views of an already collated batch.

    Returned by ``SSSDTimeSeriesDataset.__getitems__``; ``collate_fn`` returns ``.batch``
    directly, and any other collate function still sees an ordinary sequence of samples.
    """

    def __init__(self, batch: FeatureBatch) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return int(self.batch[1].shape[0])

    @overload
    def __getitem__(self, k: int) -> FeatureBatch: ...
    @overload
    def __getitem__(self, k: slice) -> list[FeatureBatch]: ...
    def __getitem__(self, k: int | slice) -> FeatureBatch | list[FeatureBatch]:
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        feats, targets, horizons = self.batch
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        return {tf: x[k] for tf, x in feats.items()}, targets[k], horizons[k]


def collate_fn(batch: Sequence[FeatureBatch]) -> FeatureBatch:
    """Stack samples: ({tf: (B, L_tf, F)}, targets (B, H, 1), horizon_indices (B, H))."""
    if isinstance(batch, PrebatchedSamples):
        return batch.batch
    if not batch:
        raise ValueError("collate_fn got an empty batch")
    tfs = batch[0][0].keys()
    feats = {tf: torch.stack([sample[0][tf] for sample in batch]) for tf in tfs}
    targets = torch.stack([sample[1] for sample in batch])
    horizons = torch.stack([sample[2] for sample in batch])
    return feats, targets, horizons
