"""Candidate decision times: their window rows in every timeframe block and their targets,
and the reasons a candidate is not a sample."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from forex_diffusion.dataset.source import FeatureSource
from forex_diffusion.errors import DataError
from forex_diffusion.features.targets import HorizonTargets, compute_targets
from forex_diffusion.features.unified_pipeline import latest_rows

# Reasons a candidate decision time is not a sample, in the order they are checked.
INSUFFICIENT_HISTORY = "insufficient_history"
WINDOW_CROSSES_SPLIT_START = "window_crosses_split_start"
EMBARGO = "embargo"
TARGET_AFTER_SPLIT_END = "target_after_split_end"
NO_TARGET = "no_target"


@dataclass(frozen=True)
class Candidates:
    """Per-decision-time arrays (N = number of candidate decision times).

    decision_ns (N,) int64; starts tf -> (N,) first window row (negative: not enough
    history); window_start_ns (N,) open time of the earliest bar in any window (valid where
    history_ok); targets: HorizonTargets (N, H), scaled by the source's target scale (the
    EWMA with decay ``lam``, or ``source.target_seasonal`` when set).
    """

    decision_ns: np.ndarray
    starts: dict[str, np.ndarray]
    history_ok: np.ndarray
    window_start_ns: np.ndarray
    targets: HorizonTargets

    @classmethod
    def evaluate(
        cls, source: FeatureSource, decision_ns: np.ndarray, horizons: Sequence[int], lam: float
    ) -> Candidates:
        starts: dict[str, np.ndarray] = {}
        ok = np.ones(len(decision_ns), dtype=bool)
        window_start = np.full(len(decision_ns), np.iinfo(np.int64).max, dtype=np.int64)
        for tf, block in source.blocks.items():
            end = latest_rows(block.open_ns, tf, decision_ns)
            start = end - block.lookback + 1
            starts[tf] = start
            ok &= start >= 0
            if len(block.open_ns):
                first_open = block.open_ns[np.clip(start, 0, len(block.open_ns) - 1)]
                window_start = np.minimum(window_start, first_open)
        try:
            targets = compute_targets(
                source.close5_ns, source.close5, decision_ns, horizons, lam, source.target_seasonal
            )
        except ValueError as exc:
            raise DataError(f"{exc}; decision times must be 5m bar closes") from None
        return cls(decision_ns, starts, ok, window_start, targets)

    def take(self, idx: np.ndarray) -> Candidates:
        t = self.targets
        return Candidates(
            self.decision_ns[idx],
            {tf: s[idx] for tf, s in self.starts.items()},
            self.history_ok[idx],
            self.window_start_ns[idx],
            HorizonTargets(t.log_returns[idx], t.scales[idx], t.last_close[idx]),
        )
