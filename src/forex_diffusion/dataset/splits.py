"""Train/val/test splits by date with the embargo and window rules (SPEC §3)."""

from __future__ import annotations

import numpy as np

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.dataset.candidates import (
    EMBARGO,
    INSUFFICIENT_HISTORY,
    NO_TARGET,
    TARGET_AFTER_SPLIT_END,
    WINDOW_CROSSES_SPLIT_START,
    Candidates,
)
from forex_diffusion.dataset.source import FeatureSource
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.timeframes import NS_PER_MIN, UtcRange


def config_splits(config: SSSDConfig) -> list[UtcRange]:
    """The train, val and test splits, each [start 00:00, day after end 00:00) UTC."""
    sp = config.data.splits
    return [
        rng.utc_range(name)
        for name, rng in (("train", sp.train), ("val", sp.val), ("test", sp.test))
    ]


def split_dataset(
    source: FeatureSource, candidates: Candidates, config: SSSDConfig
) -> dict[str, SSSDTimeSeriesDataset]:
    """Assign candidate decision times to the train/val/test splits.

    A decision time t of split S (t in [S.start, S.end)) becomes a sample only if, checked in
    this order: its windows are full (else ``insufficient_history``); for val/test, no window
    bar opened before S.start (``window_crosses_split_start``) and t >= previous split end +
    embargo (``embargo``, data.effective_embargo_minutes); t + longest horizon <= S.end
    (``target_after_split_end``); the bar at t + h exists for every horizon (``no_target``).
    """
    horizons = config.data.horizons
    max_h = max(horizons) * NS_PER_MIN
    embargo = config.data.effective_embargo_minutes * NS_PER_MIN
    t = candidates.decision_ns
    missing_any = np.asarray(candidates.targets.missing.any(axis=1))
    out: dict[str, SSSDTimeSeriesDataset] = {}
    prev: UtcRange | None = None
    for rng in config_splits(config):
        in_range = rng.contains_ns(t)
        rules: list[tuple[str, np.ndarray]] = [(INSUFFICIENT_HISTORY, ~candidates.history_ok)]
        if prev is not None:
            rules.append(
                (WINDOW_CROSSES_SPLIT_START, np.asarray(candidates.window_start_ns < rng.start_ns))
            )
            rules.append((EMBARGO, np.asarray(t < prev.end_ns + embargo)))
        rules.append((TARGET_AFTER_SPLIT_END, np.asarray(t + max_h > rng.end_ns)))
        rules.append((NO_TARGET, missing_any))
        alive = in_range.copy()
        dropped: dict[str, int] = {}
        for reason, bad in rules:
            hit = alive & bad
            dropped[reason] = int(hit.sum())
            alive &= ~bad
        idx = np.flatnonzero(alive)
        considered = np.flatnonzero(in_range & candidates.history_ok)
        miss = candidates.targets.missing[considered]
        missing_targets = {h: int(miss[:, j].sum()) for j, h in enumerate(horizons)}
        out[rng.name] = SSSDTimeSeriesDataset(
            source, candidates.take(idx), horizons, dropped, missing_targets
        )
        prev = rng
    return out
