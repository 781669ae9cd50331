"""Multi-timeframe samples for SSSD: leak-free windows, scaled multi-horizon targets, splits.

A sample is a decision time t = the close of a complete 5m bar. For each timeframe its window
is the ``lookback`` feature rows ending with the last bar of that timeframe whose CLOSE
(open + timeframe) is <= t, found by timestamp (``np.searchsorted`` on close times). Windows
are slices (views) of one contiguous float32 array per timeframe, shared by every sample and
every split built from the same candles; nothing is materialised per sample.

Feature dimension: every timeframe has the same F features (``features.names`` expanded, 28 by
default), so ``features_dict[tf]`` is (lookback_tf, F).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import lightning as L
import numpy as np
import pandas as pd
import torch
from loguru import logger
from torch.utils.data import DataLoader, Dataset, Sampler

from forex_diffusion.config.sssd_config import DateRange, SSSDConfig
from forex_diffusion.errors import ConfigError, DataError
from forex_diffusion.features.standardizer import Standardizer
from forex_diffusion.features.targets import HorizonTargets, compute_targets
from forex_diffusion.features.unified_pipeline import (
    build_bars,
    compute_timeframe_features,
    decision_grid,
    feature_warmup,
    fit_standardizer,
    latest_rows,
    prepare_candles,
    required_history,
)
from forex_diffusion.timeframes import timeframe_minutes, to_utc

_NS_PER_MIN = 60_000_000_000
FeatureBatch = tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]

# Reasons a candidate decision time is not a sample, in the order they are checked.
INSUFFICIENT_HISTORY = "insufficient_history"
WINDOW_CROSSES_SPLIT_START = "window_crosses_split_start"
EMBARGO = "embargo"
TARGET_AFTER_SPLIT_END = "target_after_split_end"
NO_TARGET = "no_target"


@dataclass(frozen=True)
class TimeframeBlock:
    """One timeframe's standardized features: values (rows, F) float32 C-contiguous and the
    bars' open times (rows,) int64 ns."""

    timeframe: str
    values: np.ndarray
    open_ns: np.ndarray
    lookback: int

    @property
    def close_ns(self) -> np.ndarray:
        return self.open_ns + timeframe_minutes(self.timeframe) * _NS_PER_MIN


@dataclass(frozen=True)
class FeatureSource:
    """What all samples built from one candle frame share.

    blocks: timeframe -> TimeframeBlock (warm-up rows already dropped).
    close5_ns, close5: (M,) close times and close prices of every complete 5m bar (targets).
    bar_close_ns: close times of every complete bar per timeframe in the candles.
    """

    blocks: dict[str, TimeframeBlock]
    feature_names: dict[str, list[str]]
    standardizer: Standardizer
    close5_ns: np.ndarray
    close5: np.ndarray
    bar_close_ns: dict[str, np.ndarray]
    needed: dict[str, int]
    candle_span: str


def _history_message(needed: dict[str, int], given: dict[str, int], warmup: int, what: str) -> str:
    parts = [
        f"{tf} needs {needed[tf]} complete bars ({warmup} warm-up + {needed[tf] - warmup} "
        f"lookback) and {what} {given[tf]}"
        for tf in needed
        if given[tf] < needed[tf]
    ]
    return "; ".join(parts)


def build_feature_source(
    df: pd.DataFrame, config: SSSDConfig, standardizer: Standardizer | None = None
) -> FeatureSource:
    """Bars, features and standardized contiguous float32 blocks of every timeframe.

    Args:
        df: base candles (config.asset.base_timeframe).
        standardizer: a fitted standardizer to apply; None fits one on the training split.

    Raises:
        DataError: bad candles, or too little history for the lookbacks (naming, per
            timeframe, the bars needed and the bars given).
    """
    base = config.asset.base_timeframe
    candles = prepare_candles(df, base)
    span = f"{len(candles)} {base} candles {candles.index[0]} .. {candles.index[-1]}"
    bars = build_bars(candles, config.data.timeframes, base)
    del candles
    needed = required_history(config)
    bar_close_ns = {
        tf: b.index.asi8 + timeframe_minutes(tf) * _NS_PER_MIN for tf, b in bars.items()
    }
    counts = {tf: len(ns) for tf, ns in bar_close_ns.items()}
    warm = feature_warmup(config.features)
    if any(counts[tf] < needed[tf] for tf in needed):
        raise DataError(
            f"too little history for the lookbacks: "
            f"{_history_message(needed, counts, warm, 'the candles give')} ({span}). "
            "Provide more candles (earlier start) or reduce data.lookbacks."
        )
    raw = {tf: compute_timeframe_features(b, tf, config.features, base) for tf, b in bars.items()}
    first = config.data.timeframes[0]
    close5 = bars[first]["close"].to_numpy(dtype=np.float64).copy()
    del bars
    if standardizer is None:
        standardizer = fit_standardizer(raw, config)
    blocks: dict[str, TimeframeBlock] = {}
    names: dict[str, list[str]] = {}
    for tf in config.data.timeframes:
        frame = raw.pop(tf)
        values = standardizer.transform_values(
            tf, frame.to_numpy(dtype=np.float64, copy=True), list(frame.columns), inplace=True
        )
        blocks[tf] = TimeframeBlock(tf, values, frame.index.asi8.copy(), config.data.lookbacks[tf])
        names[tf] = list(standardizer.feature_names(tf))
        del frame
    return FeatureSource(
        blocks, names, standardizer, bar_close_ns[first], close5, bar_close_ns, needed, span
    )


@dataclass(frozen=True)
class Candidates:
    """Per-decision-time arrays (N = number of candidate decision times).

    decision_ns (N,) int64; starts tf -> (N,) first window row (negative: not enough
    history); window_start_ns (N,) open time of the earliest bar in any window (valid where
    history_ok); targets: HorizonTargets (N, H).
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
            targets = compute_targets(source.close5_ns, source.close5, decision_ns, horizons, lam)
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
            warm = feature_warmup(config.features)
            given = {
                tf: int(
                    np.searchsorted(source.bar_close_ns[tf], cand.decision_ns[first_bad], "right")
                )
                for tf in source.blocks
            }
            raise DataError(
                f"too little history before decision time {t}: "
                f"{_history_message(source.needed, given, warm, 'the candles give')} "
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


# ---------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SplitRange:
    """A split as a half-open UTC interval [start 00:00, day after end 00:00)."""

    name: str
    start_ns: int
    end_ns: int

    @classmethod
    def from_config(cls, name: str, rng: DateRange) -> SplitRange:
        start, end = rng.utc_bounds()
        return cls(name, int(start.as_unit("ns").value), int(end.as_unit("ns").value))


def config_splits(config: SSSDConfig) -> list[SplitRange]:
    sp = config.data.splits
    return [
        SplitRange.from_config(name, rng)
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
    max_h = max(horizons) * _NS_PER_MIN
    embargo = config.data.effective_embargo_minutes * _NS_PER_MIN
    t = candidates.decision_ns
    missing_any = np.asarray(candidates.targets.missing.any(axis=1))
    out: dict[str, SSSDTimeSeriesDataset] = {}
    prev: SplitRange | None = None
    for rng in config_splits(config):
        in_range = (t >= rng.start_ns) & (t < rng.end_ns)
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


# ---------------------------------------------------------------------- data module


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
        from forex_diffusion.data.store import CandleStore, resolve_data_dir

        root = resolve_data_dir(self.config, self.data_path)
        last = config_splits(self.config)[-1]
        end = pd.Timestamp(last.end_ns, tz="UTC")
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
                    f"{self.asset}: the {name} split [{pd.Timestamp(r.start_ns, tz='UTC')}, "
                    f"{pd.Timestamp(r.end_ns, tz='UTC')}) has no samples (dropped: "
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

    @property
    def feature_names(self) -> dict[str, list[str]]:
        return {tf: list(n) for tf, n in self._ready().feature_names.items()}

    @property
    def input_dims(self) -> dict[str, int]:
        """Features per timeframe (F)."""
        return {tf: len(n) for tf, n in self.feature_names.items()}

    def _loader(self, ds: SSSDTimeSeriesDataset, shuffle: bool) -> DataLoader[FeatureBatch]:
        workers = self.config.data.num_workers
        return DataLoader(
            ds,
            batch_size=self.config.training.batch_size,
            sampler=EpochShuffleSampler(len(ds), self.config.seed) if shuffle else None,
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
