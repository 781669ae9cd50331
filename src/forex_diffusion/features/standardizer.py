"""Per-timeframe feature standardizer, fitted on the training split only, saved with the model.

A ``Standardizer`` holds, for every timeframe, the ordered feature names and the mean and
standard deviation (ddof=0) of each feature over the rows used for fitting: the bars that
opened at or after the training split's start and CLOSED at or before its end. It never
refits itself; transforming a frame whose feature names differ from the fitted ones is an
error naming the missing and extra names. ``to_dict`` is plain JSON (exact float round trip).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forex_diffusion.errors import CheckpointError, DataError
from forex_diffusion.fileio import atomic_write_text
from forex_diffusion.timeframes import NS_PER_MIN, timeframe_minutes, to_utc

STANDARDIZER_FORMAT = "forex_diffusion.standardizer"
STANDARDIZER_VERSION = 1


@dataclass(frozen=True)
class TimeframeStats:
    """Statistics of one timeframe: names (F,), mean (F,), std (F,) and the rows used."""

    feature_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    n_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_names": list(self.feature_names),
            "mean": [float(x) for x in self.mean],
            "std": [float(x) for x in self.std],
            "n_rows": int(self.n_rows),
        }


@dataclass(frozen=True)
class Standardizer:
    """Fitted per-timeframe mean/std. Build with :meth:`fit` or :meth:`from_dict`."""

    stats: Mapping[str, TimeframeStats]
    fit_start: str | None = None
    fit_end: str | None = None
    version: int = STANDARDIZER_VERSION
    meta: Mapping[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        frames: Mapping[str, pd.DataFrame],
        start: pd.Timestamp | str | None = None,
        end: pd.Timestamp | str | None = None,
    ) -> Standardizer:
        """Fit on the rows of each timeframe frame whose bar opened at or after ``start`` and
        closed (open + timeframe) at or before ``end``.

        Args:
            frames: timeframe -> raw feature frame indexed by bar open time (UTC).
            start, end: the training split's bounds (``end`` exclusive instant).

        Raises:
            DataError: a timeframe has fewer than 2 rows in the range, or non-finite values.
        """
        start_ts = to_utc(start) if start is not None else None
        end_ts = to_utc(end) if end is not None else None
        stats: dict[str, TimeframeStats] = {}
        for tf, frame in frames.items():
            mask = fit_mask(frame.index, tf, start_ts, end_ts)
            values = frame.to_numpy(dtype=np.float64)[mask]
            if len(values) < 2:
                raise DataError(
                    f"standardizer: only {len(values)} {tf} feature row(s) fall in the training "
                    f"split [{start_ts}, {end_ts}) (features cover {_span(frame.index)}); the "
                    "training split must overlap the candles by more than the feature warm-up. "
                    "Extend the data or move data.splits.train."
                )
            if not np.isfinite(values).all():
                bad = int(np.flatnonzero(~np.isfinite(values).all(axis=1))[0])
                raise DataError(
                    f"standardizer: non-finite {tf} features at {frame.index[mask][bad]}"
                )
            mean = values.mean(axis=0)
            std = values.std(axis=0)
            std = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
            stats[tf] = TimeframeStats(tuple(map(str, frame.columns)), mean, std, len(values))
        return cls(
            stats=stats,
            fit_start=None if start_ts is None else start_ts.isoformat(),
            fit_end=None if end_ts is None else end_ts.isoformat(),
        )

    # ------------------------------------------------------------------ transforming

    @property
    def timeframes(self) -> tuple[str, ...]:
        return tuple(self.stats)

    def feature_names(self, timeframe: str) -> tuple[str, ...]:
        return self._stats(timeframe).feature_names

    def _stats(self, timeframe: str) -> TimeframeStats:
        if timeframe not in self.stats:
            raise DataError(
                f"standardizer has no statistics for timeframe {timeframe!r}; it was fitted on "
                f"{list(self.stats)}. Use the timeframes the model was trained with."
            )
        return self.stats[timeframe]

    def column_order(self, timeframe: str, names: Sequence[str]) -> np.ndarray:
        """Positions of the fitted feature names in ``names``.

        Raises:
            DataError: naming the missing and extra feature names when the sets differ.
        """
        fitted = self._stats(timeframe).feature_names
        given = list(names)
        missing = [n for n in fitted if n not in given]
        extra = [n for n in given if n not in fitted]
        if missing or extra or len(given) != len(fitted):
            raise DataError(
                f"{timeframe} features do not match the fitted standardizer: missing {missing}, "
                f"extra {extra} (fitted names: {list(fitted)}). Build the features with the "
                "same features config as the model/standardizer."
            )
        pos = {n: i for i, n in enumerate(given)}
        return np.array([pos[n] for n in fitted], dtype=np.int64)

    def transform_values(
        self, timeframe: str, values: np.ndarray, names: Sequence[str], inplace: bool = False
    ) -> np.ndarray:
        """Standardize raw features ``values`` (rows, F) whose columns are ``names``.

        Returns a C-contiguous float32 array (rows, F) with columns in the fitted order.
        ``inplace=True`` lets it overwrite a float64 ``values`` to save memory.
        """
        st = self._stats(timeframe)
        order = self.column_order(timeframe, names)
        if not np.array_equal(order, np.arange(len(order))):
            values = values[:, order]
            inplace = True
        if not inplace or values.dtype != np.float64:
            values = np.array(values, dtype=np.float64)
        np.subtract(values, st.mean, out=values)
        np.divide(values, st.std, out=values)
        return np.ascontiguousarray(values, dtype=np.float32)

    def transform_frame(self, timeframe: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Standardized float32 copy of ``frame`` (columns in the fitted order)."""
        values = self.transform_values(timeframe, frame.to_numpy(dtype=np.float64), frame.columns)
        return pd.DataFrame(values, index=frame.index, columns=list(self.feature_names(timeframe)))

    def transform(self, frames: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        """Standardize every timeframe frame (see :meth:`transform_frame`)."""
        return {tf: self.transform_frame(tf, frame) for tf, frame in frames.items()}

    def inverse_values(self, timeframe: str, values: np.ndarray) -> np.ndarray:
        """Undo the standardization of (rows, F) values in the fitted column order."""
        st = self._stats(timeframe)
        return np.asarray(values, dtype=np.float64) * st.std + st.mean

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: format, version, fit range and per-timeframe names/mean/std."""
        return {
            "format": STANDARDIZER_FORMAT,
            "version": self.version,
            "fit_start": self.fit_start,
            "fit_end": self.fit_end,
            "timeframes": {tf: st.to_dict() for tf, st in self.stats.items()},
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "standardizer") -> Standardizer:
        """Rebuild from :meth:`to_dict` output. Raises CheckpointError if malformed."""
        if not isinstance(data, Mapping) or data.get("format") != STANDARDIZER_FORMAT:
            raise CheckpointError(
                f"{where}: not a forex_diffusion standardizer (missing format "
                f"{STANDARDIZER_FORMAT!r}); the checkpoint or file is foreign or corrupted."
            )
        if data.get("version") != STANDARDIZER_VERSION:
            raise CheckpointError(
                f"{where}: standardizer version {data.get('version')!r} is not supported "
                f"(this code reads version {STANDARDIZER_VERSION}); retrain the model."
            )
        try:
            stats = {}
            for tf, st in dict(data["timeframes"]).items():
                timeframe_minutes(tf)
                names = tuple(str(n) for n in st["feature_names"])
                mean = np.asarray(st["mean"], dtype=np.float64)
                std = np.asarray(st["std"], dtype=np.float64)
                if not (len(names) == mean.shape[0] == std.shape[0]) or mean.ndim != 1:
                    raise ValueError(
                        f"{tf}: {len(names)} names, {mean.shape} means, {std.shape} stds"
                    )
                if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
                    raise ValueError(f"{tf}: non-finite mean or non-positive std")
                if len(set(names)) != len(names):
                    raise ValueError(f"{tf}: repeated feature names")
                stats[str(tf)] = TimeframeStats(names, mean, std, int(st["n_rows"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: malformed standardizer: {exc}") from None
        if not stats:
            raise CheckpointError(f"{where}: the standardizer has no timeframes")
        return cls(
            stats=stats,
            fit_start=data.get("fit_start"),
            fit_end=data.get("fit_end"),
            version=int(data["version"]),
            meta=dict(data.get("meta") or {}),
        )

    def save(self, path: str | Path) -> Path:
        """Write JSON atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Standardizer:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"standardizer file not found: {path}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: unreadable standardizer JSON: {exc}") from None
        return cls.from_dict(data, where=str(path))

    def equals(self, other: Standardizer) -> bool:
        """Same timeframes, names and exactly equal statistics."""
        if list(self.stats) != list(other.stats):
            return False
        return all(
            a.feature_names == b.feature_names
            and np.array_equal(a.mean, b.mean)
            and np.array_equal(a.std, b.std)
            for a, b in ((self.stats[tf], other.stats[tf]) for tf in self.stats)
        )


def fit_mask(
    index: pd.DatetimeIndex,
    timeframe: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
) -> np.ndarray:
    """Rows whose bar opened at or after ``start`` and closed at or before ``end``."""
    open_ns = index.as_unit("ns").asi8
    mask = np.ones(len(open_ns), dtype=bool)
    if start is not None:
        mask &= open_ns >= start.as_unit("ns").value
    if end is not None:
        mask &= open_ns + timeframe_minutes(timeframe) * NS_PER_MIN <= end.as_unit("ns").value
    return mask


def _span(index: pd.DatetimeIndex) -> str:
    return "no rows" if len(index) == 0 else f"{index[0]} .. {index[-1]}"
