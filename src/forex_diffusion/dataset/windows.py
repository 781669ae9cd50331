"""Multi-timeframe samples for SSSD: leak-free windows and scaled multi-horizon targets.

A sample is a decision time t = the close of a complete 5m bar. For each timeframe its window
is the ``lookback`` feature rows ending with the last bar of that timeframe whose CLOSE
(open + timeframe) is <= t, found by timestamp (``np.searchsorted`` on close times). Windows
are slices (views) of one contiguous float32 array per timeframe, shared by every sample and
every split built from the same candles; nothing is materialised per sample.

Feature dimension: each timeframe has F_tf features (``features.names`` expanded, plus the 5m
extras), so ``features_dict[tf]`` is (lookback_tf, F_tf).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.dataset.candidates import INSUFFICIENT_HISTORY, NO_TARGET, Candidates
from forex_diffusion.dataset.collate import FeatureBatch, PrebatchedSamples
from forex_diffusion.dataset.source import FeatureSource, build_feature_source
from forex_diffusion.errors import DataError
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.unified_pipeline import (
    decision_grid,
    history_shortfall,
    history_warmups,
)
from forex_diffusion.timeframes import to_utc


def _as_decision_ns(times: Iterable[Any]) -> np.ndarray:
    index = pd.DatetimeIndex([to_utc(pd.Timestamp(t)) for t in times])
    return np.unique(index.as_unit("ns").asi8)


class SSSDTimeSeriesDataset(Dataset[FeatureBatch]):
    """Samples ``(features_dict, targets, horizon_indices)``.

    * ``features_dict``: {tf: float32 tensor (lookback_tf, F)}: views of the shared blocks.
    * ``targets``: float32 (H, 1): the SCALED target r / scale (NaN only when built with
      ``require_targets=False`` and the horizon's bar does not exist).
    * ``horizon_indices``: int64 (H,) = arange(H).

    Per-sample arrays: ``decision_times`` (DatetimeIndex), ``scales`` (N, H),
    ``last_close`` (N,), ``log_returns`` (N, H) (NaN where there is no target);
    ``feature_names`` {tf: [names]}, ``dropped`` {reason: count},
    ``missing_targets`` {horizon: candidates missing that horizon's bar}.
    """

    def __init__(
        self,
        source: FeatureSource,
        candidates: Candidates,
        horizons: Sequence[int],
        dropped: dict[str, int] | None = None,
        missing_targets: dict[int, int] | None = None,
    ) -> None:
        if not candidates.history_ok.all():
            raise ValueError("every sample must have full windows")
        self.source = source
        self.horizons = tuple(int(h) for h in horizons)
        self.timeframes = tuple(source.blocks)
        self._decision_ns = candidates.decision_ns
        self._starts = {tf: s.astype(np.int64) for tf, s in candidates.starts.items()}
        self._lookbacks = {tf: b.lookback for tf, b in source.blocks.items()}
        self._values = {tf: b.values for tf, b in source.blocks.items()}
        self.log_returns = candidates.targets.log_returns
        self.scales = candidates.targets.scales
        self.last_close = candidates.targets.last_close
        self._targets = np.ascontiguousarray(candidates.targets.scaled, dtype=np.float32)
        self._horizon_indices = torch.arange(len(self.horizons), dtype=torch.long)
        self.dropped = dict(dropped or {})
        self.missing_targets = dict(missing_targets or {})

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_candles(
        cls,
        df: pd.DataFrame,
        config: SSSDConfig,
        standardizer: Standardizer,
        decision_times: Iterable[Any] | None = None,
        require_targets: bool = True,
        start: Any = None,
        end: Any = None,
    ) -> SSSDTimeSeriesDataset:
        """Build samples from base candles with an already fitted standardizer.

        Args:
            df: base candles (config.asset.base_timeframe), UTC open-time index.
            standardizer: fitted on the training split (e.g. from the model checkpoint).
            decision_times: explicit decision times (each the close of a 5m bar in ``df``,
                each with full windows, else DataError); None = every 5m close on the
                data.decision_stride grid that has full windows.
            require_targets: drop (and count) samples lacking the bar at t+h for any horizon;
                False (inference) keeps them with NaN targets.
            start, end: keep decision times with start <= t <= end (UTC).
        """
        if not isinstance(standardizer, Standardizer):
            raise TypeError(
                "from_candles needs a fitted Standardizer (e.g. Standardizer.from_dict of the "
                "checkpoint's standardizer); features are never used unstandardized."
            )
        source = build_feature_source(df, config, standardizer)
        return cls.from_source(source, config, decision_times, require_targets, start, end)

    @classmethod
    def from_source(
        cls,
        source: FeatureSource,
        config: SSSDConfig,
        decision_times: Iterable[Any] | None = None,
        require_targets: bool = True,
        start: Any = None,
        end: Any = None,
    ) -> SSSDTimeSeriesDataset:
        """Like :meth:`from_candles`, reusing an already built :class:`FeatureSource`."""
        explicit = decision_times is not None
        if decision_times is None:
            decision_ns = decision_grid(source.close5_ns, config.data.decision_stride)
        else:
            decision_ns = _as_decision_ns(decision_times)
        if start is not None:
            decision_ns = decision_ns[decision_ns >= to_utc(start).as_unit("ns").value]
        if end is not None:
            decision_ns = decision_ns[decision_ns <= to_utc(end).as_unit("ns").value]
        if len(decision_ns) == 0:
            raise DataError(
                f"no decision time in [{start}, {end}] for {source.candle_span}; "
                "check start/end and the candles' dates."
            )
        horizons = config.data.horizons
        cand = Candidates.evaluate(source, decision_ns, horizons, config.features.vol_ewma_lambda)
        if not cand.history_ok.any() or (explicit and not cand.history_ok.all()):
            first_bad = int(np.flatnonzero(~cand.history_ok)[0])
            t = pd.Timestamp(int(cand.decision_ns[first_bad]), tz="UTC")
            warm = history_warmups(config)
            given = {
                tf: int(
                    np.searchsorted(source.bar_close_ns[tf], cand.decision_ns[first_bad], "right")
                )
                for tf in source.blocks
            }
            raise DataError(
                f"too little history before decision time {t}: "
                f"{history_shortfall(source.needed, given, warm)} "
                f"(bars closing at or before {t}; {source.candle_span}). "
                "Provide candles starting earlier."
            )
        dropped = {INSUFFICIENT_HISTORY: int((~cand.history_ok).sum())}
        cand = cand.take(np.flatnonzero(cand.history_ok))
        missing = cand.targets.missing
        missing_targets = {h: int(missing[:, j].sum()) for j, h in enumerate(horizons)}
        if require_targets:
            has_all = ~missing.any(axis=1)
            dropped[NO_TARGET] = int((~has_all).sum())
            if not has_all.any():
                raise DataError(
                    f"none of the {len(cand.decision_ns)} decision times with full windows has "
                    f"the bars at t + {list(horizons)} minutes ({source.candle_span}); "
                    "supply candles beyond the last decision time or use require_targets=False."
                )
            cand = cand.take(np.flatnonzero(has_all))
        return cls(source, cand, horizons, dropped, missing_targets)

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self._decision_ns)

    def __getitem__(self, index: int) -> FeatureBatch:
        i = int(index)
        n = len(self._decision_ns)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"sample {index} out of range for {n} samples")
        feats = {}
        for tf, values in self._values.items():
            s = int(self._starts[tf][i])
            feats[tf] = torch.from_numpy(values[s : s + self._lookbacks[tf]])
        targets = torch.from_numpy(self._targets[i]).unsqueeze(-1)
        return feats, targets, self._horizon_indices

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> FeatureBatch:
        """The collated batch of samples ``indices`` built in one pass (same values as
        ``collate_fn([self[i] for i in indices])``): ({tf: (B, L, F)}, (B, H, 1), (B, H))."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self._decision_ns)
        idx = np.where(idx < 0, idx + n, idx)
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"sample index out of range for {n} samples")
        feats = {}
        for tf, values in self._values.items():
            lookback = self._lookbacks[tf]
            buf = np.empty((len(idx), lookback, values.shape[1]), dtype=np.float32)
            for k, s in enumerate(self._starts[tf][idx].tolist()):
                buf[k] = values[s : s + lookback]
            feats[tf] = torch.from_numpy(buf)
        targets = torch.from_numpy(self._targets[idx]).unsqueeze(-1)
        horizons = self._horizon_indices.repeat(len(idx), 1)
        return feats, targets, horizons

    def __getitems__(self, indices: Sequence[int]) -> PrebatchedSamples:
        """Batched fetch used by DataLoader: the batch is built once (see collate_fn)."""
        return PrebatchedSamples(self.get_batch(indices))

    @property
    def decision_times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self._decision_ns, utc=True), name="decision_time")

    @property
    def decision_ns(self) -> np.ndarray:
        return self._decision_ns

    @property
    def feature_names(self) -> dict[str, list[str]]:
        return {tf: list(n) for tf, n in self.source.feature_names.items()}

    @property
    def n_features(self) -> dict[str, int]:
        return {tf: v.shape[1] for tf, v in self._values.items()}

    @property
    def standardizer(self) -> Standardizer:
        return self.source.standardizer

    @property
    def targets(self) -> np.ndarray:
        """Scaled targets (N, H) float32."""
        return self._targets

    def window_rows(self, index: int) -> dict[str, tuple[int, int]]:
        """[start, stop) rows of each timeframe's block used by sample ``index``."""
        return {
            tf: (int(s[index]), int(s[index]) + self._lookbacks[tf])
            for tf, s in self._starts.items()
        }

    def window_open_times(self, index: int) -> dict[str, pd.DatetimeIndex]:
        """Open times of the bars in each window of sample ``index``."""
        out = {}
        for tf, (a, b) in self.window_rows(index).items():
            ns = self.source.blocks[tf].open_ns[a:b]
            out[tf] = pd.DatetimeIndex(pd.to_datetime(ns, utc=True))
        return out
