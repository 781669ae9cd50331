"""Epoch-seeded shuffling, so a run resumed at an epoch boundary replays the same batches;
rank-aware, so that each process of a distributed run draws its own shard of the epoch."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(n)`` that depends only on (seed, epoch), sharded by rank.

    Lightning calls ``set_epoch`` before each training epoch, so a run resumed at an epoch
    boundary sees exactly the batches an uninterrupted run would have seen.

    With ``num_replicas`` > 1 every process computes the same permutation and takes every
    ``num_replicas``-th index starting at its ``rank`` (the permutation is first padded by
    repeating its head, so that all ranks draw the same number of samples, as
    ``torch.utils.data.DistributedSampler`` does). The shards are disjoint apart from that
    padding and together they are the whole permutation.

    Args:
        n: dataset length.
        seed: the run's seed.
        num_replicas: processes sharing the epoch (the world size).
        rank: this process's global rank, in ``[0, num_replicas)``.
    """

    def __init__(self, n: int, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, num_replicas={num_replicas})")
        self.n = n
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def permutation(self) -> list[int]:
        """The whole epoch's order (the same on every rank)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n, generator=gen).tolist()

    def __iter__(self) -> Iterator[int]:
        order = self.permutation()
        if self.num_replicas == 1:
            return iter(order)
        total = len(self) * self.num_replicas
        padded = (order * (total // max(1, self.n) + 1))[:total] if self.n else []
        return iter(padded[self.rank : total : self.num_replicas])

    def __len__(self) -> int:
        return -(-self.n // self.num_replicas)  # ceil(n / num_replicas)
