"""Epoch-seeded shuffling, so a run resumed at an epoch boundary replays the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` that depends only on (seed, epoch).

    Lightning calls ``set_epoch`` before each training epoch, so a run resumed at an epoch
    boundary sees exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=gen).tolist())

    def __len__(self) -> int:
        return self.n
