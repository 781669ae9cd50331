"""Purged, embargoed time-series cross-validation for samples indexed by decision times.

A sample at decision time t has the target window [t, t + horizon]. For a test fold whose
decision times run from t0 to t1, the test information spans [t0, t1 + horizon]; a training
sample is **purged** when its target window touches that span, and a training sample after
the fold is **embargoed** until t1 + horizon + embargo (the embargo covers the feature lookback
of later samples, as ``config.data.effective_embargo_minutes`` does between the data splits).
Intervals are treated as closed, so a window that merely touches the test span is purged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator

from forex_diffusion.config.sssd_config import SSSDConfig

_NS_PER_MIN = 60_000_000_000


def decision_times_of(X: Any) -> pd.DatetimeIndex:
    """The UTC decision times that index ``X`` (a DataFrame or Series with a DatetimeIndex).

    Raises:
        ValueError: ``X`` is not indexed by tz-aware, strictly increasing times.
    """
    index = getattr(X, "index", None)
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(
            "X must be a pandas DataFrame indexed by decision times (a tz-aware "
            f"DatetimeIndex, e.g. the flat features of unified_feature_pipeline); got "
            f"{type(X).__name__}{'' if index is None else ' with a ' + type(index).__name__}. "
            "Inside a Pipeline, keep pandas output (pipeline.set_output(transform='pandas'))."
        )
    if index.tz is None:
        raise ValueError("X's decision times must be tz-aware (UTC)")
    if len(index) > 1 and not (np.diff(index.as_unit("ns").asi8) > 0).all():
        raise ValueError("X's decision times must be strictly increasing (sort X by time)")
    return index.tz_convert("UTC")


class PurgedTimeSeriesSplit(BaseCrossValidator):
    """Time-ordered folds with purging and an embargo, for any scikit-learn CV consumer.

    The samples (sorted by decision time) are cut into ``n_splits + 1`` contiguous blocks
    (``walk_forward=True``) or ``n_splits`` blocks (``walk_forward=False``).

    * ``walk_forward=True``: fold k tests block k + 1 and trains on the samples before it
      (expanding window) whose target windows end before the test fold starts. The first
      block is never tested, so this is **not a partition**: ``cross_val_predict`` refuses it
      (it requires every sample in exactly one test fold). ``StackingForecaster`` handles the
      uncovered first block itself (its meta-learner is fitted on the covered rows only).
    * ``walk_forward=False``: purged k-fold (a partition, so ``cross_val_predict`` and
      ``StackingRegressor`` accept it): fold k tests block k and trains on every other sample
      that is neither purged nor embargoed. Training then uses samples *after* the test fold;
      its labels never overlap the test span, but regimes learned from the future can still
      flatter the score, which walk-forward avoids.

    Args:
        n_splits: number of folds (>= 2).
        horizon_minutes: length of each sample's target window (the longest horizon used).
        embargo_minutes: embargo after each test fold (>= 0); ``from_config`` sets it to the
            data module's ``effective_embargo_minutes`` (longest horizon + longest lookback).
        walk_forward: see above.
    """

    def __init__(
        self,
        n_splits: int = 5,
        horizon_minutes: int = 60,
        embargo_minutes: int = 0,
        walk_forward: bool = True,
    ) -> None:
        self.n_splits = n_splits
        self.horizon_minutes = horizon_minutes
        self.embargo_minutes = embargo_minutes
        self.walk_forward = walk_forward

    @classmethod
    def from_config(
        cls, config: SSSDConfig, n_splits: int = 5, walk_forward: bool = True
    ) -> PurgedTimeSeriesSplit:
        """Folds whose target window is the longest configured horizon and whose embargo is
        ``config.data.effective_embargo_minutes``."""
        return cls(
            n_splits=n_splits,
            horizon_minutes=max(config.data.horizons),
            embargo_minutes=config.data.effective_embargo_minutes,
            walk_forward=walk_forward,
        )

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return int(self.n_splits)

    def _check(self, n: int) -> int:
        if int(self.n_splits) < 2:
            raise ValueError(f"n_splits must be >= 2, got {self.n_splits}")
        if self.horizon_minutes < 0 or self.embargo_minutes < 0:
            raise ValueError("horizon_minutes and embargo_minutes must be >= 0")
        blocks = int(self.n_splits) + (1 if self.walk_forward else 0)
        if n < blocks:
            raise ValueError(f"{n} samples cannot be cut into {blocks} time blocks")
        return blocks

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (train indices, test indices) per fold; ``X`` must be indexed by decision times."""
        t = decision_times_of(X).as_unit("ns").asi8
        blocks = self._check(len(t))
        bounds = np.linspace(0, len(t), blocks + 1).astype(np.int64)
        h = int(self.horizon_minutes) * _NS_PER_MIN
        emb = int(self.embargo_minutes) * _NS_PER_MIN
        first = 1 if self.walk_forward else 0
        for k in range(first, blocks):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            test = np.arange(lo, hi)
            t0, t1 = t[lo], t[hi - 1]
            keep = training_mask(t, t0, t1, h, emb)
            if self.walk_forward:
                keep &= t < t0
            keep[lo:hi] = False
            yield np.flatnonzero(keep), test

    def _iter_test_masks(
        self, X: Any = None, y: Any = None, groups: Any = None
    ) -> Iterator[np.ndarray]:
        n = len(decision_times_of(X))
        for _, test in self.split(X, y, groups):
            mask = np.zeros(n, dtype=bool)
            mask[test] = True
            yield mask


def training_mask(t: np.ndarray, t0: int, t1: int, horizon_ns: int, embargo_ns: int) -> np.ndarray:
    """(N,) bool: samples at times ``t`` (ns) usable for training against a test fold [t0, t1].

    Purged: the target window [t, t + horizon] touches the test span [t0, t1 + horizon].
    Embargoed: t lies after the fold but before t1 + horizon + embargo.
    """
    overlaps = (t <= t1 + horizon_ns) & (t + horizon_ns >= t0)
    embargoed = (t > t1) & (t < t1 + horizon_ns + embargo_ns)
    return ~(overlaps | embargoed)
