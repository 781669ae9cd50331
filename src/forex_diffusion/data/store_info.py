"""The candle store's summary for ``forex-diffusion data info``, read without pandas or DuckDB.

Per asset: bars, first and last bar, weekday gaps over 30 minutes and closures, with the
definitions of :class:`forex_diffusion.data.store.AssetInfo` (a test checks that both agree on
a real store). The store's layout (``<ASSET>/meta.json`` and ``<ASSET>/<YYYY>.parquet``, see
:mod:`forex_diffusion.data.store`) is read directly.

The numbers of each year file (rows, first and last bar, the gaps inside it) are kept in the
manifest ``<ASSET>/.summary.json``, each under the key (size, modification time in ns, inode)
of the file they were read from. The store replaces a year file by moving a new file into
place, which changes that key, so an entry is used only for the very file it describes; a
file without a matching entry is read (its timestamp column only) and the manifest is rewritten
atomically when the folder is writable (a read-only store is summarised all the same).
Gaps that span two year files are found from the neighbouring files' last and first bars.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from forex_diffusion.assets import normalize_asset
from forex_diffusion.errors import DataError, NotFoundError
from forex_diffusion.timeframe_units import NS_PER_DAY, NS_PER_MIN, timeframe_minutes

if TYPE_CHECKING:
    import numpy as np

# the layout of forex_diffusion.data.store (a test checks they agree), written out here so
# that `data info` does not import the store's pandas and DuckDB
META_FILE = "meta.json"
YEAR_FILE = re.compile(r"^(\d{4})\.parquet$")
JOURNAL_FILE = "journal.parquet"  # data.store.JOURNAL_FILE: bars appended since a compaction
MANIFEST_FILE = ".summary.json"
MANIFEST_VERSION = 1
GAP_THRESHOLD_NS = 30 * NS_PER_MIN
CLOSURE_MIN_NS = NS_PER_DAY
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Stamps = TypeVar("Stamps", int, "np.ndarray")


@dataclass(frozen=True)
class FileSummary:
    """One year file: ``rows``; ``first``/``last`` bar open times (int ns UTC, None when the
    file is empty); ``gaps``: weekday gaps over 30 minutes between its bars as (start, end) ns
    pairs (start = close of the bar before); ``closures``: its weekend and holiday closes.
    ``key`` identifies the file read: (size, mtime_ns, inode)."""

    key: tuple[int, int, int]
    rows: int
    first: int | None
    last: int | None
    gaps: tuple[tuple[int, int], ...]
    closures: int

    def to_json(self) -> dict[str, Any]:
        return {
            "key": list(self.key),
            "rows": self.rows,
            "first": self.first,
            "last": self.last,
            "gaps": [list(g) for g in self.gaps],
            "closures": self.closures,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileSummary:
        size, mtime_ns, inode = (int(v) for v in data["key"])
        return cls(
            key=(size, mtime_ns, inode),
            rows=int(data["rows"]),
            first=None if data["first"] is None else int(data["first"]),
            last=None if data["last"] is None else int(data["last"]),
            gaps=tuple((int(s), int(e)) for s, e in data["gaps"]),
            closures=int(data["closures"]),
        )


@dataclass(frozen=True)
class AssetSummary:
    """What ``data info`` shows of one asset (times are UTC ``datetime``; ``gaps`` are the
    weekday gaps over 30 minutes as (start, end); ``closures`` counts the weekend and
    whole-day holiday closes)."""

    asset: str
    base_timeframe: str
    bars: int
    first: datetime
    last: datetime
    gaps: tuple[tuple[datetime, datetime], ...]
    closures: int
    synthetic: bool

    @property
    def gap_count(self) -> int:
        return len(self.gaps)


def gap_kinds(start: Stamps, end: Stamps) -> tuple[Stamps, Stamps]:
    """(long, closure) for gaps [start, end) in int ns UTC (scalars or (n,) arrays): ``long``
    when over 30 minutes; ``closure`` when it touches a UTC Saturday or lasts 24 h or more
    (1970-01-01 was a Thursday, so the first Saturday is day 2)."""
    d1 = start // NS_PER_DAY
    d2 = (end - 1) // NS_PER_DAY
    saturday = (2 - d1) % 7 <= d2 - d1
    length = end - start
    return length > GAP_THRESHOLD_NS, saturday | (length >= CLOSURE_MIN_NS)


def utc(ns: int) -> datetime:
    """The UTC datetime of an int ns timestamp (microsecond precision)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def asset_names(data_dir: Path) -> list[str]:
    """Names of the stored assets (folders with a ``meta.json``), sorted."""
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir() if (p / META_FILE).is_file())


def read_meta(folder: Path) -> dict[str, Any]:
    """An asset folder's ``meta.json`` (DataError naming the file when unreadable or without
    ``base_timeframe``); the store reads it through this too."""
    path = folder / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: unreadable store metadata ({exc}); re-import the asset into a fresh folder"
        ) from exc
    if not isinstance(meta, dict) or "base_timeframe" not in meta:
        raise DataError(f"{path}: store metadata lacks 'base_timeframe'; re-import the asset")
    return meta


def _year_files(folder: Path) -> list[Path]:
    """The year files in year order, then the journal of recent appends when there is one
    (``data.store``'s layout)."""
    found = {int(m.group(1)): p for p in folder.iterdir() if (m := YEAR_FILE.match(p.name))}
    journal = folder / JOURNAL_FILE
    return [found[y] for y in sorted(found)] + ([journal] if journal.is_file() else [])


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _read_timestamps(path: Path) -> tuple[tuple[int, int, int], Any]:
    """(file key, (n,) int64 open times in ns) of one candle file.

    Raises:
        DataError: an unreadable file or one without a timestamp column.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with path.open("rb") as fh:
            key = _key(os.fstat(fh.fileno()))
            table = pq.ParquetFile(fh).read(columns=["timestamp"])
        column = table.column("timestamp").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        if column.null_count:
            raise ValueError("missing timestamps")
    except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"{path}: damaged candle file ({exc}); run forex-diffusion data check"
        ) from exc
    # read from the buffers: ChunkedArray.to_numpy would import pandas
    ts = np.concatenate(
        [np.zeros(0, np.int64)]
        + [
            np.frombuffer(c.buffers()[1], dtype=np.int64)[c.offset : c.offset + len(c)]
            for c in column.chunks
        ]
    )
    return key, ts


def _summary_of(key: tuple[int, int, int], ts: Any, base_ns: int) -> FileSummary:
    """The summary of sorted open times ``ts`` (bars of ``base_ns`` length)."""
    if len(ts) == 0:
        return FileSummary(key, 0, None, None, (), 0)
    start, end = ts[:-1] + base_ns, ts[1:]
    long, closure = gap_kinds(start, end)
    weekday = long & ~closure
    return FileSummary(
        key=key,
        rows=len(ts),
        first=int(ts[0]),
        last=int(ts[-1]),
        gaps=tuple((int(s), int(e)) for s, e in zip(start[weekday], end[weekday], strict=True)),
        closures=int((long & closure).sum()),
    )


def read_file_summary(path: Path, base_ns: int) -> FileSummary:
    """Read one candle file's timestamp column and summarise it (bars of ``base_ns`` length).

    The key is taken from the open file, so it always describes the bytes read.

    Raises:
        DataError: an unreadable file or one without a timestamp column.
    """
    key, ts = _read_timestamps(path)
    return _summary_of(key, ts, base_ns)


def _load_manifest(folder: Path, base: str) -> dict[str, FileSummary]:
    """The manifest's entries by file name; empty when absent, unreadable or of another
    version or base timeframe."""
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        if data.get("version") != MANIFEST_VERSION or data.get("base_timeframe") != base:
            return {}
        return {str(n): FileSummary.from_json(f) for n, f in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _save_manifest(folder: Path, base: str, files: dict[str, FileSummary]) -> None:
    """Write the manifest atomically; a folder that cannot be written is left as it is."""
    from forex_diffusion.fileio import atomic_write_text

    text = json.dumps(
        {
            "version": MANIFEST_VERSION,
            "base_timeframe": base,
            "files": {n: f.to_json() for n, f in files.items()},
        }
    )
    with suppress(OSError):  # a read-only store: the summary was computed all the same
        atomic_write_text(folder / MANIFEST_FILE, text + "\n")


def file_summaries(folder: Path, base: str) -> list[FileSummary]:
    """The summary of each year file of the asset folder, in year order (from the manifest
    where its key matches the file, else read; the manifest is updated when anything was
    read or a file disappeared)."""
    base_ns = timeframe_minutes(base) * NS_PER_MIN
    cached = _load_manifest(folder, base)
    current: dict[str, FileSummary] = {}
    for path in _year_files(folder):
        hit = cached.get(path.name)
        if hit is not None and hit.key == _key(path.stat()):
            current[path.name] = hit
        else:
            current[path.name] = read_file_summary(path, base_ns)
    if current != cached:
        _save_manifest(folder, base, current)
    return list(current.values())


def summarize_asset(data_dir: Path, asset: str) -> AssetSummary:
    """Bars, first/last bar, weekday gaps over 30 minutes and closures of one stored asset.

    Raises:
        NotFoundError: the asset is not in the store.
        DataError: unreadable metadata, a damaged year file, or no stored bar.
    """
    name = normalize_asset(asset)
    folder = data_dir / name
    if not (folder / META_FILE).is_file():
        known = ", ".join(asset_names(data_dir)) or "none"
        raise NotFoundError(
            f"asset {name!r} is not in the candle store at {data_dir} "
            f"(stored assets: {known}). Import it with "
            f"`forex-diffusion data import FILE --asset {name}` or pass the right --data-dir."
        )
    meta = read_meta(folder)
    base = str(meta["base_timeframe"])
    base_ns = timeframe_minutes(base) * NS_PER_MIN
    files = sorted((f for f in file_summaries(folder, base) if f.rows), key=lambda f: f.first or 0)
    if any((b.first or 0) <= (a.last or 0) for a, b in itertools.pairwise(files)):
        # the journal holds bars inside a year file's span (a small back-fill): summarise the
        # merged open times instead (the store never holds one open time twice)
        files = [_merged_summary(folder, base_ns)]
    if not files:
        raise DataError(
            f"asset {name} has no stored bars (an import was interrupted?); re-import it"
        )
    gaps: list[tuple[int, int]] = []
    closures = 0
    previous: FileSummary | None = None
    for f in files:
        assert f.first is not None and f.last is not None
        if previous is not None and previous.last is not None:
            start, end = previous.last + base_ns, f.first
            long, closure = gap_kinds(start, end)
            if long and closure:
                closures += 1
            elif long:
                gaps.append((start, end))
        gaps.extend(f.gaps)
        closures += f.closures
        previous = f
    first, last = files[0].first, files[-1].last
    assert first is not None and last is not None
    return AssetSummary(
        asset=name,
        base_timeframe=base,
        bars=sum(f.rows for f in files),
        first=utc(first),
        last=utc(last),
        gaps=tuple((utc(s), utc(e)) for s, e in gaps),
        closures=closures,
        synthetic=bool(meta.get("synthetic", False)),
    )


def _merged_summary(folder: Path, base_ns: int) -> FileSummary:
    """One summary of every candle file's open times merged in time order."""
    import numpy as np

    parts = [_read_timestamps(p)[1] for p in _year_files(folder)]
    return _summary_of((0, 0, 0), np.sort(np.concatenate(parts)), base_ns)
