"""Importers: candle files of several formats into the candle store (SPEC §3, §9).

Formats (``fmt``; "auto" detects them from the content):

* ``tidy``: the CSV of ../shared/data/fx (``timestamp,open,high,low,close,volume``, ISO UTC),
  plain or ``.gz``.
* ``histdata``: HistData.com ASCII M1 (``YYYYMMDD HHMMSS;o;h;l;c;v``), ``.csv`` or ``.zip``.
  Its clock is New-York style, not a fixed UTC−5: UTC = label + 5 h − 1 h × [DST in effect],
  with US DST dates for data years ≤ 2018 and EU dates for years ≥ 2019 (checked in
  ../shared/data/fx/README.md). ``tz`` overrides it: ``ny-us``/``ny-eu`` force one rule,
  ``America/New_York`` uses true New York time, ``Etc/GMT+5`` a fixed UTC−5, ``UTC+2`` any fixed
  offset. See :mod:`forex_diffusion.data.importers.timezones`.
* ``mt4`` / ``mt5``: MetaTrader history exports (server time; UTC unless ``tz``).
* ``dukascopy``: ``Gmt time,Open,High,Low,Close,Volume`` with ``02.01.2019 00:00:00.000``.
* ``generic``: any CSV with a column mapping (``columns="time=Date,open=O,..."``) and an
  optional ``time_format``.

Validation (vectorised): field count, unparseable times or numbers, NaN/inf, non-positive
prices, high < max(open, close), low > min(open, close), negative volume, times off the minute,
non-monotonic times, and the asset's sanity bounds (future times, absurd prices or jumps). A
bad row fails the whole import with a DataError naming ``file:line`` and nothing is written,
unless ``skip_bad`` is True: then bad rows are skipped and listed in the report.

Each file's bar interval is its modal spacing; anything but 1m or 5m is refused, and so is an
interval other than the stored asset's.

Duplicated times with identical values are dropped (first copy kept) and counted. The same time
with *different* values (twice in one file, in two files, or in a file and the store) is a
conflict: an error naming ``file:line`` and both values, unless ``on_conflict`` is "keep" (the
first copy, or the stored bar, stays) or "replace" (the last copy wins; stored bars are
replaced atomically and counted in the report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forex_diffusion.assets import normalize_asset
from forex_diffusion.config.sssd_config import SanityBounds
from forex_diffusion.data.candles import candle_frame, infer_base_timeframe
from forex_diffusion.data.importers.formats import FORMAT_NAMES
from forex_diffusion.data.importers.reader import (
    BadRow,
    DuplicateConflict,
    FileReport,
    ParsedFile,
    bad_rows_message,
    format_bad_rows,
    read_candles_file,
)
from forex_diffusion.data.store import (
    ON_CONFLICT_CHOICES,
    BarConflictError,
    CandleStore,
    OnConflict,
    WriteReport,
    format_bar,
)
from forex_diffusion.errors import DataError

__all__ = [
    "FORMAT_NAMES",
    "ON_CONFLICT_CHOICES",
    "BadRow",
    "FileReport",
    "ImportReport",
    "ParsedFile",
    "format_bad_rows",
    "import_files",
    "read_candles_file",
]


@dataclass(frozen=True)
class ImportReport:
    """Outcome of :func:`import_files`.

    ``rows_read``: data rows in the files; ``rows_written``: bars new to the store;
    ``duplicates_dropped``: repeated times inside and across the files; ``already_stored``:
    bars the store held already; ``bad_rows``: rejected rows (only non-empty with skip_bad);
    ``conflicts``: repeated or stored times with different values resolved by ``on_conflict``
    (keep or replace); ``replaced``: stored bars replaced (``on_conflict="replace"``).
    """

    asset: str
    files: tuple[FileReport, ...]
    rows_read: int
    rows_written: int
    duplicates_dropped: int
    already_stored: int
    bad_rows: tuple[BadRow, ...]
    first: pd.Timestamp
    last: pd.Timestamp
    write: WriteReport
    conflicts: int = 0
    replaced: int = 0


_HINT = (
    "Fix the file, or choose --on-conflict keep (the first copy / the stored bar stays) or "
    "--on-conflict replace (the last copy wins; stored bars are replaced)."
)


def _when(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


_SHOWN = 10  # conflicts listed in a message


def _listing(lines: list[str], total: int) -> str:
    shown = [f"  {line}" for line in lines[:_SHOWN]]
    if total > _SHOWN:
        shown.append(f"  ... and {total - _SHOWN} more")
    return "\n".join(shown)


def _file_conflicts_message(conflicts: list[DuplicateConflict]) -> str:
    lines = [
        f"{c.file}:{c.line}: time {_when(c.ts)} repeats line {c.first_line} with different "
        f"values: {format_bar(c.values)} here, {format_bar(c.first)} on line {c.first_line}"
        for c in conflicts[:_SHOWN]
    ]
    return (
        f"{len(conflicts)} duplicated time(s) with different values (o/h/l/c/v); nothing was "
        f"imported.\n{_listing(lines, len(conflicts))}\n{_HINT}"
    )


@dataclass(frozen=True)
class _Combined:
    """The bars of all files, sorted and unique; ``file``/``row`` (n,) say where each came from."""

    ts: np.ndarray
    values: np.ndarray
    file: np.ndarray
    row: np.ndarray
    duplicates: int
    conflicts: list[tuple[int, int]]  # (position of the later copy, of the first) before dedup
    sorted_file: np.ndarray
    sorted_row: np.ndarray
    sorted_ts: np.ndarray
    sorted_values: np.ndarray


def _resolve_in_file(p: ParsedFile, on_conflict: OnConflict) -> ParsedFile:
    """With "replace", the last copy of a repeated time wins inside the file."""
    if on_conflict != "replace" or not p.conflicts:
        return p
    values = p.values.copy()
    for c in p.conflicts:  # in file order: the last copy is applied last
        values[int(np.searchsorted(p.ts, c.ts))] = c.values
    return ParsedFile(p.ts, values, p.report, p.bad, p.conflicts, p.lines)


def _combine(parsed: list[ParsedFile], on_conflict: OnConflict) -> _Combined:
    ts = np.concatenate([p.ts for p in parsed])
    values = np.concatenate([p.values for p in parsed]).reshape(len(ts), 5)
    file = np.concatenate([np.full(len(p.ts), i, dtype=np.int64) for i, p in enumerate(parsed)])
    row = np.concatenate([np.arange(len(p.ts), dtype=np.int64) for p in parsed])
    order = np.argsort(ts, kind="stable")  # files in the order given
    ts, values, file, row = ts[order], values[order], file[order], row[order]
    n = len(ts)
    first = np.r_[True, ts[1:] != ts[:-1]] if n else np.zeros(0, dtype=bool)
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else first.astype(int)
    differ = ~first & (values != values[start]).any(axis=1)
    conflicts = [(int(i), int(start[i])) for i in np.flatnonzero(differ)]
    pick = first
    if on_conflict == "replace":
        pick = np.r_[ts[1:] != ts[:-1], True] if n else first  # the last copy wins
    return _Combined(
        ts[pick],
        values[pick],
        file[pick],
        row[pick],
        int((~first).sum()),
        conflicts,
        file,
        row,
        ts,
        values,
    )


def _where(parsed: list[ParsedFile], file: int, row: int) -> str:
    p = parsed[file]
    return f"{p.report.file}:{int(p.lines(np.array([row]))[0])}"


def _cross_conflicts_message(parsed: list[ParsedFile], c: _Combined) -> str:
    lines = []
    for later, first in c.conflicts[:_SHOWN]:
        a = _where(parsed, int(c.sorted_file[first]), int(c.sorted_row[first]))
        b = _where(parsed, int(c.sorted_file[later]), int(c.sorted_row[later]))
        lines.append(
            f"{b}: time {_when(c.sorted_ts[later])} is also in {a} with different values: "
            f"{format_bar(c.sorted_values[later])} here, {format_bar(c.sorted_values[first])} "
            "there"
        )
    return (
        f"{len(c.conflicts)} time(s) appear in two files with different values (o/h/l/c/v); "
        f"nothing was imported.\n{_listing(lines, len(c.conflicts))}\n{_HINT}"
    )


def _store_conflicts_message(
    parsed: list[ParsedFile], c: _Combined, exc: BarConflictError, asset: str
) -> str:
    found = exc.conflicts
    lines = []
    for t, stored, incoming in zip(
        found.ts[:_SHOWN], found.stored[:_SHOWN], found.incoming[:_SHOWN], strict=True
    ):
        k = int(np.searchsorted(c.ts, t))
        lines.append(
            f"{_where(parsed, int(c.file[k]), int(c.row[k]))}: the bar at {_when(t)} is "
            f"{format_bar(incoming)} in the file but {asset} already stores {format_bar(stored)}"
        )
    return (
        f"{len(found)} bar(s) differ from the bars {asset} already stores (o/h/l/c/v); nothing "
        f"was imported.\n{_listing(lines, len(found))}\n{_HINT}"
    )


def import_files(
    paths: Sequence[str | Path] | str | Path,
    asset: str,
    store: CandleStore,
    fmt: str = "auto",
    tz: str | None = None,
    skip_bad: bool = False,
    columns: str | Mapping[str, str] | None = None,
    time_format: str | None = None,
    on_conflict: OnConflict = "error",
    sanity: SanityBounds | None = None,
) -> ImportReport:
    """Import candle files into ``store`` under ``asset`` (merge, idempotent, atomic per file).

    All files are read and checked before anything is written, so a bad file leaves the store
    untouched. Files may overlap one another and the stored range; conflicting bars are
    handled by ``on_conflict`` (see the module docstring). ``sanity`` defaults to
    :class:`SanityBounds`.

    Raises:
        DataError: a bad row (``file:line: reason``) without ``skip_bad``, a conflict with
            ``on_conflict="error"`` (``file:line`` and both values), a bar interval other than
            1m/5m or than the stored one, an unrecognised format, no valid bar at all.
        NotFoundError: a path that does not exist.
    """
    name = normalize_asset(asset)
    if fmt != "auto" and fmt not in FORMAT_NAMES:
        raise DataError(f"unknown format {fmt!r}: use auto or one of {', '.join(FORMAT_NAMES)}")
    if on_conflict not in ON_CONFLICT_CHOICES:
        raise DataError(
            f"unknown --on-conflict {on_conflict!r}: use one of {', '.join(ON_CONFLICT_CHOICES)}"
        )
    path_list = [paths] if isinstance(paths, str | Path) else list(paths)
    if not path_list:
        raise DataError("no file to import: give at least one path")
    parsed: list[ParsedFile] = []
    for path in path_list:
        parsed.extend(read_candles_file(path, fmt, tz, True, columns, time_format, sanity))
    bad = [b for p in parsed for b in p.bad]
    if bad and not skip_bad:
        raise DataError(bad_rows_message(bad))
    stored_base = store.base_timeframe(name) if store.has(name) else None
    for p in parsed:
        interval = infer_base_timeframe(p.ts, where=p.report.file)  # 1m or 5m, else named
        if stored_base is not None and len(p.ts) > 1 and interval != stored_base:
            raise DataError(
                f"{p.report.file}: the file holds {interval} bars (modal spacing) but {name} is "
                f"stored at {stored_base}; one asset holds one bar interval. Import the "
                f"{stored_base} file, or import this one under another asset name."
            )
    in_file = [c for p in parsed for c in p.conflicts]
    if in_file and on_conflict == "error":
        raise DataError(_file_conflicts_message(in_file))
    parsed = [_resolve_in_file(p, on_conflict) for p in parsed]
    combined = _combine(parsed, on_conflict)
    if combined.conflicts and on_conflict == "error":
        raise DataError(_cross_conflicts_message(parsed, combined))
    if len(combined.ts) == 0:
        raise DataError(
            f"no valid bar in {', '.join(str(p) for p in path_list)}; nothing was imported"
        )
    frame = candle_frame(combined.ts, combined.values)
    source = ", ".join(Path(str(p)).name for p in path_list)
    try:
        written = store.write(name, frame, source=source, on_conflict=on_conflict, sanity=sanity)
    except BarConflictError as exc:
        raise DataError(_store_conflicts_message(parsed, combined, exc, name)) from None
    return ImportReport(
        asset=name,
        files=tuple(p.report for p in parsed),
        rows_read=sum(p.report.rows_read for p in parsed),
        rows_written=written.rows_added,
        duplicates_dropped=sum(p.report.duplicates for p in parsed) + combined.duplicates,
        already_stored=written.already_stored,
        bad_rows=tuple(bad),
        first=frame.index[0],
        last=frame.index[-1],
        write=written,
        conflicts=len(in_file) + len(combined.conflicts) + written.conflicts,
        replaced=written.replaced,
    )
