"""The candle store: per-asset Parquet files queried with DuckDB (SPEC §3, §9).

Layout under the data root (``resolve_data_dir``)::

    <data_dir>/<ASSET>/meta.json      base timeframe, synthetic flag, sources
    <data_dir>/<ASSET>/<YYYY>.parquet  bars whose open time falls in UTC year YYYY
    <data_dir>/<ASSET>/journal.parquet bars appended since the last compaction (optional)

One Parquet file per calendar year (zstd, row groups of 2**16 bars, columns timestamp
[UTC, µs], open, high, low, close, volume) keeps writes local: importing a year rewrites only
that year's file, and merging never rewrites the whole history. Every file is written to a
temporary name in the same folder and moved into place with ``os.replace``, so readers see
the old or the new file, never a partial one. Writes merge with what is stored: the union of
bars; an incoming bar equal to the stored bar of the same open time changes nothing, which
makes imports idempotent (same input twice = byte-identical files). An incoming bar that
*differs* from the stored one is a conflict: an error (:class:`BarConflictError`, nothing
written) unless the caller chooses ``on_conflict="keep"`` (the stored bar stays) or
``"replace"`` (the incoming bar wins; the year files are rewritten atomically). Writers of one
asset take an exclusive file lock (``<ASSET>/.lock``, ``filelock``), so concurrent imports
never lose bars; under it, temporary files left by an interrupted writer
(``.<YYYY>.parquet.<pid>.<hex>.tmp``) are removed, and readers never look at them.

Appends without rewriting a year file: once an asset has year files, a small write (the
journal's bars plus the incoming ones at most ``compact_rows``) goes to the asset's journal,
a small Parquet file of the bars appended since the last compaction, rewritten atomically
(temporary + ``os.replace``) with the new bars; the year files are not touched. Readers merge
the journal into what they read, so every reader sees the same candles as with the year files
alone. A bigger write, or a journal that would outgrow ``compact_rows``, compacts: the journal
and the incoming bars are merged into the year files they touch (each replaced atomically),
then the journal is removed. The journal and the year files never hold the same open time,
except after a compaction interrupted between the two steps, when they hold the same bars: a
reader then keeps one of each, and the next write finishes the compaction. Readers read the
journal before listing the year files, so a compaction running meanwhile can only show them a
bar twice (kept once), never lose one. Conflicts are detected against the year files and the
journal alike; an incoming bar that replaces (``on_conflict="replace"``) a bar of a year file
rewrites that year file (a compaction).

Every incoming batch is checked against the asset: one bar interval (the stored base, 1m or
5m; see :func:`forex_diffusion.data.candles.infer_base_timeframe`) and the sanity bounds
(:mod:`forex_diffusion.data.sanity`). A damaged year file is reported by name
(:meth:`CandleStore.check` verifies every file).

Loading runs one DuckDB query over the year files that overlap the range, with the time
filter pushed down to the Parquet row groups; coarser timeframes are built by causal
resampling (:func:`forex_diffusion.data.resample.resample_ohlc`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from forex_diffusion.assets import normalize_asset
from forex_diffusion.config.sssd_config import SanityBounds
from forex_diffusion.data.candles import (
    CANDLE_COLUMNS,
    candle_frame,
    infer_base_timeframe,
    validate_candles,
)
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.data.sanity import sanity_problems
from forex_diffusion.data.store_info import read_meta
from forex_diffusion.errors import DataError, NotFoundError
from forex_diffusion.fileio import atomic_write_text, stage_write
from forex_diffusion.settings import Settings
from forex_diffusion.timeframes import NS_PER_DAY, NS_PER_MIN, timeframe_minutes, to_utc

if TYPE_CHECKING:
    from forex_diffusion.config.sssd_config import SSSDConfig

META_FILE = "meta.json"
LOCK_FILE = ".lock"
JOURNAL_FILE = "journal.parquet"
COMPACT_ROWS = 2_000  # journal bars that trigger a compaction into the year files
ROW_GROUP_SIZE = 1 << 16
GAP_THRESHOLD = pd.Timedelta(minutes=30)
CLOSURE_MIN = pd.Timedelta(hours=24)
_YEAR_FILE = re.compile(r"^(\d{4})\.parquet$")
_TEMPORARY = re.compile(r"^\..+\.tmp$")
OnConflict = Literal["error", "keep", "replace"]
ON_CONFLICT_CHOICES: tuple[OnConflict, ...] = ("error", "keep", "replace")
_SCHEMA = pa.schema(
    [("timestamp", pa.timestamp("us", tz="UTC"))] + [(c, pa.float64()) for c in CANDLE_COLUMNS]
)


def resolve_data_dir(config: SSSDConfig | None = None, data_dir: str | Path | None = None) -> Path:
    """The candle store root: ``data_dir`` > env FOREX_DIFFUSION_DATA_DIR > config.paths.data_dir
    > ``data`` (see :mod:`forex_diffusion.settings`)."""
    return Settings.from_flags(data_dir=data_dir).data_dir_for(config)


@dataclass(frozen=True)
class Gap:
    """A stretch without bars: from the close of the bar before it to the open of the next."""

    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def duration(self) -> pd.Timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class AssetInfo:
    """Summary of one stored asset.

    ``gaps`` are weekday gaps longer than 30 minutes; weekend closes (any gap touching a UTC
    Saturday) and whole-day holiday closes (gaps of 24 h or more, e.g. Christmas) are counted
    in ``closures`` instead. This is the definition behind the gap counts of
    ../shared/data/fx/README.md.
    """

    asset: str
    base_timeframe: str
    bars: int
    first: pd.Timestamp
    last: pd.Timestamp
    gaps: tuple[Gap, ...]
    closures: int
    synthetic: bool
    sources: tuple[str, ...]
    files: tuple[Path, ...]

    @property
    def gap_count(self) -> int:
        return len(self.gaps)


@dataclass(frozen=True)
class WriteReport:
    """What ``CandleStore.write`` did.

    ``rows_in``: bars given; ``rows_added``: bars new to the store; ``already_stored``: bars
    whose open time was stored already; ``conflicts``: how many of those differed in value;
    ``replaced``: how many stored bars were replaced (``on_conflict="replace"``; with "keep"
    the stored bars stayed); ``total_bars``: bars stored afterwards; ``files_written``;
    ``temporaries_removed``: stale temporary files of interrupted writes cleaned up.
    """

    asset: str
    rows_in: int
    rows_added: int
    already_stored: int
    conflicts: int
    total_bars: int
    files_written: tuple[Path, ...] = field(default_factory=tuple)
    replaced: int = 0
    temporaries_removed: int = 0


@dataclass(frozen=True)
class BarConflicts:
    """Incoming bars that differ from stored (or earlier) bars with the same open time.

    Shapes: ``ts`` (k,) int64 UTC ns; ``stored`` and ``incoming`` (k, 5)
    open/high/low/close/volume.
    """

    ts: np.ndarray
    stored: np.ndarray
    incoming: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)


def format_bar(values: np.ndarray) -> str:
    """``o/h/l/c/v`` of one bar, (5,) float64, with full precision."""
    return "/".join(f"{float(v)!r}" for v in values)


class BarConflictError(DataError):
    """Incoming bars conflict with stored bars; ``conflicts`` says which (nothing was written)."""

    def __init__(self, message: str, conflicts: BarConflicts) -> None:
        super().__init__(message)
        self.conflicts = conflicts


@dataclass(frozen=True)
class FileHealth:
    """One file of an asset's folder: a year file (``year`` set), the journal or a stale
    temporary (``year`` None, ``note`` says which).

    ``problem`` is None for a healthy year file or journal; ``rows`` is None when the file is unreadable;
    ``note`` describes a harmless file (a stale temporary: never read, removed by the next
    write).
    """

    asset: str
    path: Path
    year: int | None
    rows: int | None
    problem: str | None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _timestamps(table: pa.Table) -> np.ndarray:
    """(n,) int64 ns UTC of the table's ``timestamp`` column."""
    ts_col = table.column("timestamp").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    return np.asarray(ts_col.to_numpy(), dtype=np.int64)


def _arrays(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps (n,) int64 ns UTC, values (n, 5) float64 open/high/low/close/volume)."""
    ts = _timestamps(table)
    values = np.column_stack(
        [np.asarray(table.column(c).to_numpy(), dtype=np.float64) for c in CANDLE_COLUMNS]
    ).reshape(len(ts), len(CANDLE_COLUMNS))
    return ts, values


def _table(ts: np.ndarray, values: np.ndarray) -> pa.Table:
    arrays = [pa.array(ts // 1000, type=pa.timestamp("us", tz="UTC"))]
    arrays += [pa.array(values[:, j]) for j in range(values.shape[1])]
    return pa.Table.from_arrays(arrays, schema=_SCHEMA)


def _year_of(ns: np.ndarray) -> np.ndarray:
    return ns.astype("datetime64[ns]").astype("datetime64[Y]").astype(np.int64) + 1970


def _locate(values: np.ndarray, sorted_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``values`` is in the sorted array ``sorted_ts``, by binary search
    (``np.isin`` would hash the whole stored array on every append): (positions (n,), clipped
    to the array, found (n,) bool: whether ``sorted_ts`` holds the value there)."""
    if len(sorted_ts) == 0:
        return np.zeros(len(values), np.int64), np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_ts, values), len(sorted_ts) - 1)
    return pos, np.asarray(sorted_ts[pos] == values)


def _in_sorted(values: np.ndarray, sorted_ts: np.ndarray) -> np.ndarray:
    """Which of ``values`` occur in the sorted array ``sorted_ts``: (n,) bool."""
    return _locate(values, sorted_ts)[1]


@dataclass(frozen=True)
class _Merged:
    """One year's merge: the bars (ts (n,), values (n, 5)), bars added, conflicting bars
    (their positions in the incoming arrays), and whether stored bars were replaced."""

    ts: np.ndarray
    values: np.ndarray
    added: int
    conflict_pos: np.ndarray
    conflict_stored: np.ndarray
    replaced: bool


def _merge(
    old_ts: np.ndarray,
    old_v: np.ndarray,
    new_ts: np.ndarray,
    new_v: np.ndarray,
    on_conflict: OnConflict,
) -> _Merged:
    """Union of two sorted, unique bar sets. Equal bars are idempotent; differing bars of the
    same open time are conflicts: the incoming bar replaces the stored one only for
    ``on_conflict="replace"``."""
    none = np.zeros(0, np.int64)
    if len(old_ts) == 0:
        return _Merged(new_ts, new_v, len(new_ts), none, np.zeros((0, 5)), False)
    clipped, found = _locate(new_ts, old_ts)
    differs = np.zeros(len(new_ts), dtype=bool)
    differs[found] = (old_v[clipped[found]] != new_v[found]).any(axis=1)
    conflict_pos = np.flatnonzero(differs)
    conflict_stored = old_v[clipped[conflict_pos]]
    replaced = on_conflict == "replace" and len(conflict_pos) > 0
    if replaced:
        old_v = old_v.copy()
        old_v[clipped[conflict_pos]] = new_v[conflict_pos]
    add = ~found
    if not add.any():
        return _Merged(old_ts, old_v, 0, conflict_pos, conflict_stored, replaced)
    ts = np.concatenate([old_ts, new_ts[add]])
    values = np.concatenate([old_v, new_v[add]])
    order = np.argsort(ts, kind="stable")
    return _Merged(
        ts[order], values[order], int(add.sum()), conflict_pos, conflict_stored, replaced
    )


StatKey = tuple[int, int, int]


def _stat_key(path: Path) -> StatKey | None:
    """(inode, size, modification time ns) of ``path``: changes with every replace; None when
    the file does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class _Span:
    """Bars of one stored file and the open times (ns) of its first and last bar."""

    rows: int
    first_ns: int
    last_ns: int


def _read_span(path: Path, asset: str) -> _Span:
    """The file's span from its Parquet footer (row-group statistics of ``timestamp``)."""
    try:
        with pa.memory_map(str(path), "r") as source:
            meta = pq.read_metadata(source)
        col = meta.schema.to_arrow_schema().get_field_index("timestamp")
        if meta.num_rows == 0 or col < 0:
            return _Span(meta.num_rows, 0, -1)
        firsts, lasts = [], []
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(col).statistics
            if stats is None or not stats.has_min_max:
                ts = _timestamps(_read_table(path, asset, columns=["timestamp"]))
                return _Span(len(ts), int(ts.min()), int(ts.max()))
            firsts.append(pd.Timestamp(stats.min).as_unit("ns").value)
            lasts.append(pd.Timestamp(stats.max).as_unit("ns").value)
        return _Span(meta.num_rows, min(firsts), max(lasts))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(_damaged(path, asset, str(exc))) from exc


def _union(
    a_ts: np.ndarray, a_v: np.ndarray, b_ts: np.ndarray, b_v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted union of two sorted, unique bar sets; ``b`` wins where both hold an open time."""
    if len(b_ts) == 0:
        return a_ts, a_v
    if len(a_ts) == 0:
        return b_ts, b_v
    if a_ts[-1] < b_ts[0]:
        return np.concatenate([a_ts, b_ts]), np.concatenate([a_v, b_v])
    ts = np.concatenate([a_ts, b_ts])
    values = np.concatenate([a_v, b_v])
    order = np.argsort(ts, kind="stable")
    ts, values = ts[order], values[order]
    last = np.r_[ts[1:] != ts[:-1], True]  # the last of equal open times comes from b
    return ts[last], values[last]


def _read_table(
    path: Path, asset: str, columns: list[str] | None = None, missing_ok: bool = False
) -> pa.Table:
    """A stored year file or journal, read through one open file (a file replaced meanwhile
    is read whole, old or new); a damaged one is a DataError naming it and what to do (a
    missing one too, unless ``missing_ok``: FileNotFoundError then)."""
    try:
        with pa.memory_map(str(path), "r") as source:
            table = pq.read_table(source, columns=columns)
    except FileNotFoundError as exc:
        if missing_ok:
            raise
        raise DataError(_damaged(path, asset, str(exc))) from exc
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(_damaged(path, asset, str(exc))) from exc
    missing = [
        c for c in (columns or ["timestamp", *CANDLE_COLUMNS]) if c not in table.column_names
    ]
    if missing:
        raise DataError(_damaged(path, asset, f"missing column(s) {missing}"))
    return table


def _damaged(path: Path, asset: str, problem: str) -> str:
    if path.name == JOURNAL_FILE:
        return (
            f"{path}: damaged candle journal of {asset} ({problem}). Move it out of the store "
            f"and append the bars since the last compaction again (POST /v1/bars or "
            f"forex-diffusion data import FILE --asset {asset})"
        )
    m = _YEAR_FILE.match(path.name)
    year = m.group(1) if m else "its year"
    return (
        f"{path}: damaged candle file of {asset} ({problem}). Move it out of the store and "
        f"re-import the year {year}: forex-diffusion data import FILE --asset {asset}"
    )


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporary files an interrupted writer left in ``folder``; call it only while
    holding the folder's writer lock (then no temporary is in use). Returns how many."""
    removed = 0
    for p in folder.iterdir():
        if _TEMPORARY.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def _stage_parquet(table: pa.Table, target: Path) -> Path:
    """Write ``table`` to a temporary file beside ``target`` (fsynced); return its path."""

    def write(tmp: Path) -> None:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            use_dictionary=False,
            row_group_size=ROW_GROUP_SIZE,
            write_statistics=True,
        )

    return stage_write(target, write, fsync=True)


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _touches_saturday(start_ns: np.ndarray, end_ns: np.ndarray) -> np.ndarray:
    """Whether each interval [start, end) overlaps a UTC Saturday (1970-01-01 was a Thursday)."""
    d1 = start_ns // NS_PER_DAY
    d2 = (end_ns - 1) // NS_PER_DAY
    to_saturday = (2 - d1) % 7  # days from d1 to the next Saturday (weekday index 5)
    return to_saturday <= (d2 - d1)


class CandleStore:
    """Per-asset Parquet candle store under ``data_dir`` (see the module docstring)."""

    def __init__(self, data_dir: str | Path, compact_rows: int = COMPACT_ROWS) -> None:
        self.data_dir = Path(data_dir)
        self.compact_rows = compact_rows
        # what was read of each file, valid while its stat key is unchanged
        self._journals: dict[Path, tuple[StatKey, np.ndarray, np.ndarray]] = {}
        self._spans: dict[Path, tuple[StatKey, _Span]] = {}
        self._con: duckdb.DuckDBPyConnection | None = None  # opened on first query (~50 ms)
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"CandleStore({str(self.data_dir)!r})"

    def __getstate__(self) -> dict[str, object]:
        # the DuckDB connection is not picklable
        return {"data_dir": self.data_dir, "compact_rows": self.compact_rows}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.data_dir = Path(str(state["data_dir"]))
        self.compact_rows = int(str(state.get("compact_rows", COMPACT_ROWS)))
        self._journals, self._spans = {}, {}
        self._con = None
        self._pid = os.getpid()

    def __enter__(self) -> CandleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the in-memory DuckDB connection (reopened on the next query)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor on this store's DuckDB connection (one per query, safe across threads)."""
        if self._con is None or self._pid != os.getpid():  # never share across a fork
            self._con = duckdb.connect()
            self._pid = os.getpid()
        return self._con.cursor()

    # -- catalogue ------------------------------------------------------------------------
    def _dir(self, asset: str) -> Path:
        return self.data_dir / normalize_asset(asset)

    def assets(self) -> list[str]:
        """Names of the stored assets, sorted."""
        if not self.data_dir.is_dir():
            return []
        return sorted(p.name for p in self.data_dir.iterdir() if (p / META_FILE).is_file())

    def has(self, asset: str) -> bool:
        return (self._dir(asset) / META_FILE).is_file()

    def _require(self, asset: str) -> str:
        name = normalize_asset(asset)
        if not self.has(name):
            known = ", ".join(self.assets()) or "none"
            raise NotFoundError(
                f"asset {name!r} is not in the candle store at {self.data_dir} "
                f"(stored assets: {known}). Import it with "
                f"`forex-diffusion data import FILE --asset {name}` or pass the right --data-dir."
            )
        return name

    def _meta(self, name: str) -> dict[str, object]:
        return read_meta(self._dir(name))

    def _year_files(self, name: str) -> dict[int, Path]:
        folder = self._dir(name)
        out: dict[int, Path] = {}
        for p in folder.iterdir():
            m = _YEAR_FILE.match(p.name)
            if m:
                out[int(m.group(1))] = p
        return dict(sorted(out.items()))

    def _journal(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The asset's journal bars (ts (n,) int64 ns, values (n, 5)); empty without one.
        Read again only when the file changed."""
        path = self._dir(name) / JOURNAL_FILE
        key = _stat_key(path)
        cached = self._journals.get(path)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1], cached[2]
        try:
            ts, values = _arrays(_read_table(path, name, missing_ok=True))
        except FileNotFoundError:  # none, or removed by a compaction: its bars are in the years
            return np.zeros(0, np.int64), np.zeros((0, len(CANDLE_COLUMNS)))
        if key is not None:  # read after the stat: at least as new as the key says
            self._journals[path] = (key, ts, values)
        return ts, values

    def _span(self, name: str, path: Path) -> _Span:
        """Rows and first/last open time of a year file or the journal (cached per version)."""
        key = _stat_key(path)
        cached = self._spans.get(path)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        span = _read_span(path, name)
        if key is not None:
            self._spans[path] = (key, span)
        return span

    def _year_rows(self, name: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Bars of the year files (journal excluded) with open time in [lo, hi] (ns)."""
        t0 = pd.Timestamp(lo, tz="UTC")
        t1 = pd.Timestamp(hi, tz="UTC") + pd.Timedelta(microseconds=1)  # stored in µs
        return self._select(name, self._files_for(name, t0, t1), t0, t1)

    def version(self, asset: str) -> tuple[tuple[str, int, int, int], ...]:
        """A token that changes whenever the stored bars of ``asset`` change: name, inode,
        size and modification time of each of its year files and journal (every write
        replaces a file). Raises NotFoundError for an unknown asset."""
        folder = self._dir(self._require(asset))
        out = []
        for entry in os.scandir(folder):
            if _YEAR_FILE.match(entry.name) or entry.name == JOURNAL_FILE:
                try:
                    st = entry.stat()
                except FileNotFoundError:  # removed meanwhile (a compacted journal)
                    continue
                out.append((entry.name, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(sorted(out))

    def base_timeframe(self, asset: str) -> str:
        """Timeframe of the stored bars ("1m" or "5m")."""
        return str(self._meta(self._require(asset))["base_timeframe"])

    def is_synthetic(self, asset: str) -> bool:
        return bool(self._meta(self._require(asset)).get("synthetic", False))

    # -- writing --------------------------------------------------------------------------
    def write(
        self,
        asset: str,
        df: pd.DataFrame,
        source: str = "api",
        base_timeframe: str | None = None,
        on_conflict: OnConflict = "error",
        sanity: SanityBounds | None = None,
        described_as: str | None = None,
    ) -> WriteReport:
        """Merge candles ``df`` into the store (union of bars; see the module docstring).

        ``df`` must satisfy the candle contract; ``df.attrs["synthetic"]`` marks synthetic data,
        which is never mixed with market data in one asset. The base timeframe is fixed by the
        first write (the modal bar spacing, 1m or 5m, unless given); later writes must have the
        same interval. Bars outside ``sanity`` (default :class:`SanityBounds`) are refused.
        Atomic per file; nothing is rewritten when no bar is new or replaced. ``described_as``
        names the candles in the candle-contract errors (default "candles for ASSET"), so that
        a caller's own name for them (e.g. the service's "bars for ASSET") needs no second
        validation.

        Raises:
            BarConflictError: bars differing from stored bars of the same open time, with
                ``on_conflict="error"`` (nothing is written).
            DataError: invalid candles, another bar interval, misaligned bars, implausible bars,
                a synthetic/market mix, or a damaged year file.
        """
        name = normalize_asset(asset)
        where = described_as or f"candles for {name}"
        frame = validate_candles(df, where=where)
        synthetic = bool(df.attrs.get("synthetic", False))
        ts = frame.index.as_unit("ns").asi8
        values = frame.to_numpy(dtype=np.float64)  # (n, 5): validated, columns CANDLE_COLUMNS
        problems = sanity_problems(ts, values[:, :4], sanity or SanityBounds())
        if problems:
            shown = "; ".join(f"{pd.Timestamp(int(ts[i]), tz='UTC')}: {r}" for i, r in problems[:5])
            raise DataError(f"{where}: {len(problems)} implausible bar(s): {shown}")
        if on_conflict not in ON_CONFLICT_CHOICES:
            raise DataError(
                f"on_conflict must be one of {ON_CONFLICT_CHOICES}, got {on_conflict!r}"
            )
        # a new asset's interval is checked before its folder is made
        interval = infer_base_timeframe(ts, where=where) if not self.has(name) else None
        folder = self._dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(folder / LOCK_FILE):  # one writer per asset at a time (read-merge-write)
            cleaned = remove_stale_temporaries(folder)
            meta = self._checked_meta(name, ts, synthetic, base_timeframe, interval, where)
            journal = folder / JOURNAL_FILE
            j_ts, j_v = self._journal(name)
            plan = None
            if self._year_files(name) and len(ts) + len(j_ts) <= self.compact_rows:
                plan = self._append_journal(folder, j_ts, j_v, ts, values, on_conflict)
            if plan is None:  # compaction: journal and incoming bars into the year files
                staged, added, found = self._merge_years(folder, ts, values, on_conflict, j_ts, j_v)
            else:
                staged, added, found = plan
            try:
                sources = [str(s) for s in _as_list(meta.get("sources"))]
                if source and source not in sources:
                    sources.append(source)
                if not self.has(name) or sources != meta.get("sources"):
                    meta["sources"] = sources
                    atomic_write_text(  # before any data file appears
                        folder / META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n"
                    )
                for tmp, target in staged:
                    os.replace(tmp, target)
                    written, span = self._journals.pop(tmp, None), self._spans.pop(tmp, None)
                    if written is not None:  # the journal just written: no need to read it
                        self._journals[target] = written
                    if span is not None:
                        self._spans[target] = span
                if plan is None and len(j_ts):
                    journal.unlink(missing_ok=True)  # after its bars reached the year files
            finally:
                for tmp, _ in staged:
                    self._journals.pop(tmp, None)
                    self._spans.pop(tmp, None)
                    tmp.unlink(missing_ok=True)
            total = sum(self._span(name, p).rows for p in self._year_files(name).values())
            if journal.exists():
                total += self._span(name, journal).rows
        return WriteReport(
            asset=name,
            rows_in=len(ts),
            rows_added=added,
            already_stored=len(ts) - added,
            conflicts=len(found),
            total_bars=total,
            files_written=tuple(t for _, t in staged),
            replaced=len(found) if on_conflict == "replace" else 0,
            temporaries_removed=cleaned,
        )

    def _checked_meta(
        self,
        name: str,
        ts: np.ndarray,
        synthetic: bool,
        base_timeframe: str | None,
        interval: str | None,
        where: str,
    ) -> dict[str, object]:
        """The asset's metadata (new if absent), after checking the incoming bars (of bar
        interval ``interval``, None for a single bar; ``where`` names them in errors) fit it."""
        if self.has(name):
            meta = self._meta(name)
            base = str(meta["base_timeframe"])
            if base_timeframe is not None and timeframe_minutes(
                base_timeframe
            ) != timeframe_minutes(base):
                raise DataError(
                    f"asset {name} is stored at {base}; cannot add {base_timeframe} bars to it"
                )
            if bool(meta.get("synthetic", False)) != synthetic:
                kind = "synthetic" if meta.get("synthetic") else "market"
                raise DataError(
                    f"asset {name} holds {kind} data; refusing to mix in "
                    f"{'synthetic' if synthetic else 'market'} bars. Use another asset name."
                )
        else:
            base = base_timeframe or interval or "1m"
            meta = {"asset": name, "base_timeframe": base, "synthetic": synthetic, "sources": []}
        base_ns = timeframe_minutes(base) * NS_PER_MIN
        misaligned = np.flatnonzero(ts % base_ns != 0)
        if len(misaligned):
            first = pd.Timestamp(int(ts[misaligned[0]]), tz="UTC")
            raise DataError(
                f"{where}: {len(misaligned)} bar(s) not on a {base} boundary, first at "
                f"{first}; the store holds {base} bars"
            )
        if len(ts) > 1 and np.diff(ts).min() < base_ns:
            raise DataError(
                f"{where}: bars closer than the base timeframe {base}; resample them before storing"
            )
        if interval is None and len(ts) > 1:
            interval = infer_base_timeframe(ts, where=where)
            if interval != base:
                raise DataError(
                    f"{where}: the incoming bars are {interval} bars (modal spacing) "
                    f"but {name} is stored at {base}; one asset holds one bar interval. Import "
                    f"the {base} file, or store these bars under another asset name."
                )
        return meta

    def _append_journal(
        self,
        folder: Path,
        j_ts: np.ndarray,
        j_v: np.ndarray,
        ts: np.ndarray,
        values: np.ndarray,
        on_conflict: OnConflict,
    ) -> tuple[list[tuple[Path, Path]], int, BarConflicts] | None:
        """Stage the journal with the incoming bars added: ([(temporary, journal)] or [] when
        nothing is new, bars added, conflicts). None when a compaction is needed instead: the
        journal shares bars with the year files (an interrupted compaction), or an incoming bar
        replaces a bar of a year file. Raises BarConflictError (``on_conflict="error"``)."""
        name = folder.name
        lo = int(min(ts[0], j_ts[0])) if len(j_ts) else int(ts[0])
        hi = int(max(ts[-1], j_ts[-1])) if len(j_ts) else int(ts[-1])
        y_ts, y_v = self._year_rows(name, lo, hi)
        if len(j_ts) and _in_sorted(j_ts, y_ts).any():
            return None
        s_ts, s_v = _union(y_ts, y_v, j_ts, j_v)
        m = _merge(s_ts, s_v, ts, values, on_conflict)
        found = BarConflicts(ts[m.conflict_pos], m.conflict_stored, values[m.conflict_pos])
        if len(found) and on_conflict == "error":
            raise BarConflictError(conflict_message(name, found), found)
        if m.replaced and _in_sorted(ts[m.conflict_pos], y_ts).any():
            return None
        take = ~_in_sorted(ts, s_ts)
        if m.replaced:
            take[m.conflict_pos] = True
        if not take.any():
            return [], 0, found
        n_ts, n_v = _union(j_ts, j_v, ts[take], values[take])
        target = folder / JOURNAL_FILE
        staged = _stage_parquet(_table(n_ts, n_v), target)
        key = _stat_key(staged) or (0, 0, 0)  # os.replace keeps inode, size and mtime
        self._journals[staged] = (key, n_ts, n_v)  # see write()
        self._spans[staged] = (key, _Span(len(n_ts), int(n_ts[0]), int(n_ts[-1])))
        return [(staged, target)], m.added, found

    def _merge_years(
        self,
        folder: Path,
        ts: np.ndarray,
        values: np.ndarray,
        on_conflict: OnConflict,
        j_ts: np.ndarray,
        j_v: np.ndarray,
    ) -> tuple[list[tuple[Path, Path]], int, BarConflicts]:
        """Merge the journal's bars and the incoming bars into each year file they touch,
        staged as temporary files (the journal's bars win over the year file's, the incoming
        ones are merged per ``on_conflict``).

        Returns ([(temporary, target)], bars added, the conflicting bars); on failure (a
        conflict with ``on_conflict="error"`` included) no temporary file is left behind.
        """
        name = folder.name
        files = self._year_files(name)
        years = _year_of(ts)
        j_years = _year_of(j_ts)
        merged: list[tuple[Path, _Merged, bool]] = []
        for year in sorted({int(y) for y in np.unique(years)} | {int(y) for y in j_years}):
            target = folder / f"{year:04d}.parquet"
            if year in files:
                old_ts, old_v = _arrays(_read_table(target, name))
            else:
                old_ts, old_v = np.zeros(0, np.int64), np.zeros((0, 5))
            jl, jh = np.searchsorted(j_years, [year, year + 1])
            old_ts, old_v = _union(old_ts, old_v, j_ts[jl:jh], j_v[jl:jh])
            a, b = np.searchsorted(years, [year, year + 1])
            m = _merge(old_ts, old_v, ts[a:b], values[a:b], on_conflict)
            merged.append((target, _shifted(m, int(a)), jh > jl))
        pos = np.concatenate([m.conflict_pos for _, m, _ in merged])
        found = BarConflicts(
            ts[pos], np.concatenate([m.conflict_stored for _, m, _ in merged]), values[pos]
        )
        if len(found) and on_conflict == "error":
            raise BarConflictError(conflict_message(name, found), found)
        staged: list[tuple[Path, Path]] = []
        try:
            for target, m, from_journal in merged:
                if m.added or m.replaced or from_journal:
                    staged.append((_stage_parquet(_table(m.ts, m.values), target), target))
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        return staged, sum(m.added for _, m, _ in merged), found

    # -- reading --------------------------------------------------------------------------
    def _files_for(
        self, name: str, start: pd.Timestamp | None, end: pd.Timestamp | None
    ) -> list[Path]:
        """The year files holding bars in [start, end) (by year, then by their first and last
        bar)."""
        lo = start.year if start is not None else -1
        hi = end.year if end is not None else 10_000
        out = []
        for year, path in self._year_files(name).items():
            if not lo <= year <= hi:
                continue
            span = self._span(name, path)
            if start is not None and span.last_ns < start.as_unit("ns").value:
                continue
            if end is not None and span.first_ns >= end.as_unit("ns").value:
                continue
            out.append(path)
        return out

    def _last_open(self, name: str) -> pd.Timestamp | None:
        j_ts, _ = self._journal(name)
        files = self._year_files(name)
        last = int(j_ts[-1]) if len(j_ts) else None
        if files:
            span = self._span(name, list(files.values())[-1])
            if span.rows:
                last = span.last_ns if last is None else max(last, span.last_ns)
        return None if last is None else pd.Timestamp(last, tz="UTC")

    def last_bar(self, asset: str) -> pd.Timestamp:
        """Open time of the latest stored bar of ``asset`` (UTC).

        Raises:
            NotFoundError: unknown asset. DataError: no bar stored, or a damaged year file.
        """
        name = self._require(asset)
        last = self._last_open(name)
        if last is None:
            raise DataError(
                f"asset {name} has no stored bars (an import was interrupted?); re-import it"
            )
        return to_utc(last).as_unit("ns")

    def load(
        self,
        asset: str,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
        timeframe: str | None = None,
        include_partial: bool = False,
    ) -> pd.DataFrame:
        """Candles of ``asset`` with open time in [start, end) (UTC; naive input is UTC).

        ``timeframe`` None or the base timeframe returns the stored bars; a coarser one (any
        multiple of the base: 5m, 15m, 1h, 4h, ...) is built by causal resampling: a bar
        [L, L + tf) is returned only when it closed by ``end`` and by the close of the last stored
        bar (``include_partial`` keeps the trailing unfinished bar), and only when L >= start
        (no bar with missing head). The result has ``n_base`` (base bars per bar) then.

        Returns:
            DataFrame indexed by UTC open time (datetime64[ns, UTC], named ``timestamp``),
            columns open/high/low/close/volume (float64) [+ n_base]; ``attrs["synthetic"]``.

        Raises:
            NotFoundError: unknown asset (lists the stored ones).
            DataError: no bar in the range, or a timeframe that is not a multiple of the base.
        """
        name = self._require(asset)
        base = self.base_timeframe(name)
        tf = timeframe or base
        if timeframe_minutes(tf) % timeframe_minutes(base):
            raise DataError(
                f"timeframe {tf} is not a multiple of {name}'s base timeframe {base}; "
                f"use {base} or a multiple of it"
            )
        t0 = to_utc(start) if start is not None else None
        t1 = to_utc(end) if end is not None else None
        if t0 is not None and t1 is not None and t1 <= t0:
            raise DataError(f"empty range for {name}: end {t1} is not after start {t0}")
        frame = self._query(name, t0, t1)
        if len(frame) == 0:
            raise DataError(self._no_bars_message(name, t0, t1, base))
        frame.attrs["synthetic"] = self.is_synthetic(name)
        if timeframe_minutes(tf) == timeframe_minutes(base):
            return frame
        asof = None
        if t1 is not None:
            last_open = self._last_open(name)
            if last_open is not None and last_open >= t1:
                asof = t1
        out = resample_ohlc(
            frame, tf, base_timeframe=base, asof=asof, include_partial=include_partial
        )
        if t0 is not None:
            out = out[out.index >= t0]
        if len(out) == 0:
            raise DataError(
                f"no complete {tf} bar for {name} in [{t0 or 'start'}, {t1 or 'end'}); "
                f"widen the range (or pass include_partial=True)"
            )
        out.attrs["synthetic"] = frame.attrs["synthetic"]
        return out

    def _query(self, name: str, t0: pd.Timestamp | None, t1: pd.Timestamp | None) -> pd.DataFrame:
        """Stored bars in [t0, t1): the year files merged with the journal (read first, see
        the module docstring)."""
        j_ts, j_v = self._journal(name)
        if len(j_ts):
            lo = 0 if t0 is None else np.searchsorted(j_ts, t0.as_unit("ns").value)
            hi = len(j_ts) if t1 is None else np.searchsorted(j_ts, t1.as_unit("ns").value)
            j_ts, j_v = j_ts[lo:hi], j_v[lo:hi]
        y_ts, y_v = self._select(name, self._files_for(name, t0, t1), t0, t1)
        return candle_frame(*_union(y_ts, y_v, j_ts, j_v))

    def _select(
        self, name: str, files: list[Path], t0: pd.Timestamp | None, t1: pd.Timestamp | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Bars of the year ``files`` in [t0, t1): one DuckDB query, the time filter pushed
        down to the row groups. (ts (n,) int64 ns, values (n, 5))."""
        if not files:
            return np.zeros(0, np.int64), np.zeros((0, len(CANDLE_COLUMNS)))
        where: list[str] = []
        params: dict[str, object] = {"files": [str(p) for p in files]}
        if t0 is not None:
            where.append("timestamp >= $t0")
            params["t0"] = t0.to_pydatetime()
        if t1 is not None:
            where.append("timestamp < $t1")
            params["t1"] = t1.to_pydatetime()
        sql = f"SELECT {', '.join(('timestamp', *CANDLE_COLUMNS))} FROM read_parquet($files)"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY timestamp"
        try:
            table = self._run(sql, params)
        except duckdb.Error as exc:
            for health in self.check(name):
                if health.year is not None and not health.ok and health.path in files:
                    raise DataError(_damaged(health.path, name, str(health.problem))) from exc
            raise DataError(
                f"cannot read the stored candles of {name} ({exc}); run "
                f"`forex-diffusion data check --asset {name}` to find the damaged file"
            ) from exc
        return _arrays(table)

    def _run(self, sql: str, params: dict[str, object], tries: int = 3) -> pa.Table:
        """The query's result; retried when it fails, since DuckDB may open a file more than
        once and a writer can replace it in between (a damaged file fails every try)."""
        for attempt in range(tries):
            cur = self._cursor()
            try:
                return cur.sql(sql, params=params).to_arrow_table()
            except duckdb.Error:
                if attempt == tries - 1:
                    raise
            finally:
                cur.close()
        raise AssertionError("unreachable")

    def _no_bars_message(
        self, name: str, t0: pd.Timestamp | None, t1: pd.Timestamp | None, base: str
    ) -> str:
        span = "nothing"
        j_ts, _ = self._journal(name)
        files = self._year_files(name)
        firsts = [int(j_ts[0])] if len(j_ts) else []
        if files:
            first = self._span(name, next(iter(files.values())))
            if first.rows:
                firsts.append(first.first_ns)
        last = self._last_open(name)
        if firsts and last is not None:
            span = f"{pd.Timestamp(min(firsts), tz='UTC')} to {last}"
        return (
            f"no {base} bars for {name} in [{t0 or 'start'}, {t1 or 'end'}); "
            f"the store holds {span}. Choose a range inside it."
        )

    # -- summary --------------------------------------------------------------------------
    def info(self, asset: str) -> AssetInfo:
        """Bars, first/last open time, weekday gaps > 30 min and closures of ``asset``."""
        name = self._require(asset)
        meta = self._meta(name)
        base = str(meta["base_timeframe"])
        j_ts, _ = self._journal(name)
        files = self._year_files(name)
        stamps = [_timestamps(_read_table(p, name, columns=["timestamp"])) for p in files.values()]
        ts = np.concatenate(stamps) if stamps else np.zeros(0, np.int64)
        if len(j_ts):
            ts = np.union1d(ts, j_ts)
        if len(ts) == 0:
            raise DataError(
                f"asset {name} has no stored bars (an import was interrupted?); re-import it"
            )
        gap_start = ts[:-1] + timeframe_minutes(base) * NS_PER_MIN
        gap_end = ts[1:]
        long = (gap_end - gap_start) > GAP_THRESHOLD.value
        closure = _touches_saturday(gap_start, gap_end) | (
            (gap_end - gap_start) >= CLOSURE_MIN.value
        )
        gaps = tuple(
            Gap(pd.Timestamp(int(s), tz="UTC"), pd.Timestamp(int(e), tz="UTC"))
            for s, e in zip(gap_start[long & ~closure], gap_end[long & ~closure], strict=True)
        )
        return AssetInfo(
            asset=name,
            base_timeframe=base,
            bars=len(ts),
            first=pd.Timestamp(int(ts[0]), tz="UTC"),
            last=pd.Timestamp(int(ts[-1]), tz="UTC"),
            gaps=gaps,
            closures=int((long & closure).sum()),
            synthetic=bool(meta.get("synthetic", False)),
            sources=tuple(str(s) for s in _as_list(meta.get("sources"))),
            files=tuple(files.values()) + ((self._dir(name) / JOURNAL_FILE,) if len(j_ts) else ()),
        )

    # -- health ---------------------------------------------------------------------------
    def check(self, asset: str) -> list[FileHealth]:
        """Verify every file of ``asset``: each year file is readable Parquet with the candle
        columns, holds bars of that year, strictly increasing, on the base grid, valid OHLC;
        stale temporary files are listed with a note (the next write removes them)."""
        name = self._require(asset)
        base_ns = timeframe_minutes(self.base_timeframe(name)) * NS_PER_MIN
        out = [
            self._check_year(name, year, path, base_ns)
            for year, path in self._year_files(name).items()
        ]
        journal = self._dir(name) / JOURNAL_FILE
        if journal.exists():
            health = self._check_year(name, None, journal, base_ns)
            out.append(
                FileHealth(
                    name,
                    journal,
                    None,
                    health.rows,
                    health.problem,
                    "journal of the latest appended bars (merged into the year files at the "
                    "next compaction)",
                )
            )
        for p in sorted(self._dir(name).iterdir()):
            if _TEMPORARY.match(p.name):
                out.append(
                    FileHealth(
                        name,
                        p,
                        None,
                        None,
                        None,
                        "stale temporary file of an interrupted write (never read; removed by "
                        "the next write)",
                    )
                )
        return out

    @staticmethod
    def _check_year(name: str, year: int | None, path: Path, base_ns: int) -> FileHealth:
        """Health of a year file (``year``) or of the journal (``year`` None)."""
        try:
            ts, values = _arrays(_read_table(path, name))
        except DataError as exc:
            return FileHealth(name, path, year, None, str(exc))
        problem = None
        steps = np.diff(ts)
        if len(ts) == 0:
            problem = "no bars"
        elif year is not None and (_year_of(ts) != year).any():
            problem = f"holds bars outside {year}"
        elif (steps <= 0).any():
            problem = "timestamps not strictly increasing"
        elif (ts % base_ns).any():
            problem = "bars off the base timeframe grid"
        else:
            try:
                validate_candles(candle_frame(ts, values), where=str(path))
            except DataError as exc:
                problem = str(exc)
        if problem is not None and not problem.startswith(str(path)):
            problem = _damaged(path, name, problem)
        return FileHealth(name, path, year, len(ts), problem)


def _shifted(m: _Merged, offset: int) -> _Merged:
    """``m`` with its conflict positions shifted by ``offset`` (positions into the whole batch)."""
    return _Merged(m.ts, m.values, m.added, m.conflict_pos + offset, m.conflict_stored, m.replaced)


def conflict_message(name: str, found: BarConflicts, limit: int = 5) -> str:
    """What :class:`BarConflictError` says: how many, the first few with both values."""
    lines = [
        f"  {pd.Timestamp(int(t), tz='UTC')}: stored {format_bar(old)}, incoming {format_bar(new)}"
        for t, old, new in zip(
            found.ts[:limit], found.stored[:limit], found.incoming[:limit], strict=True
        )
    ]
    if len(found) > limit:
        lines.append(f"  ... and {len(found) - limit} more")
    return (
        f"{len(found)} incoming bar(s) of {name} differ from the stored bars with the same "
        "open time (o/h/l/c/v); nothing was written:\n" + "\n".join(lines) + "\n"
        "Choose --on-conflict keep (keep the stored bars) or --on-conflict replace (the "
        "incoming bars replace them)."
    )
