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
non-monotonic times. Duplicated times are dropped (first copy kept) and counted. A bad row
fails the whole import with a DataError naming ``file:line`` and nothing is written, unless
``skip_bad`` is True: then bad rows are skipped and listed in the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forex_diffusion.assets import normalize_asset
from forex_diffusion.data.candles import candle_frame
from forex_diffusion.data.importers.formats import FORMAT_NAMES
from forex_diffusion.data.importers.reader import (
    BadRow,
    FileReport,
    ParsedFile,
    bad_rows_message,
    format_bad_rows,
    read_candles_file,
)
from forex_diffusion.data.store import CandleStore, WriteReport
from forex_diffusion.errors import DataError

__all__ = [
    "FORMAT_NAMES",
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
    bars the store held already; ``bad_rows``: rejected rows (only non-empty with skip_bad).
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


def _combine(parsed: list[ParsedFile]) -> tuple[np.ndarray, np.ndarray, int]:
    ts = np.concatenate([p.ts for p in parsed])
    values = np.concatenate([p.values for p in parsed]).reshape(len(ts), 5)
    if len(parsed) == 1:
        return ts, values, 0
    order = np.argsort(ts, kind="stable")
    ts, values = ts[order], values[order]
    first = np.r_[True, ts[1:] != ts[:-1]]
    return ts[first], values[first], int((~first).sum())


def import_files(
    paths: Sequence[str | Path] | str | Path,
    asset: str,
    store: CandleStore,
    fmt: str = "auto",
    tz: str | None = None,
    skip_bad: bool = False,
    columns: str | Mapping[str, str] | None = None,
    time_format: str | None = None,
) -> ImportReport:
    """Import candle files into ``store`` under ``asset`` (merge, idempotent, atomic per file).

    All files are read and checked before anything is written, so a bad file leaves the store
    untouched. Files may overlap one another and the stored range.

    Raises:
        DataError: a bad row (``file:line: reason``) without ``skip_bad``, an unrecognised
            format, no valid bar at all.
        NotFoundError: a path that does not exist.
    """
    name = normalize_asset(asset)
    if fmt != "auto" and fmt not in FORMAT_NAMES:
        raise DataError(f"unknown format {fmt!r}: use auto or one of {', '.join(FORMAT_NAMES)}")
    path_list = [paths] if isinstance(paths, str | Path) else list(paths)
    if not path_list:
        raise DataError("no file to import: give at least one path")
    parsed: list[ParsedFile] = []
    for path in path_list:
        parsed.extend(read_candles_file(path, fmt, tz, True, columns, time_format))
    bad = [b for p in parsed for b in p.bad]
    if bad and not skip_bad:
        raise DataError(bad_rows_message(bad))
    ts, values, cross_dups = _combine(parsed)
    if len(ts) == 0:
        raise DataError(
            f"no valid bar in {', '.join(str(p) for p in path_list)}; nothing was imported"
        )
    frame = candle_frame(ts, values)
    source = ", ".join(Path(str(p)).name for p in path_list)
    written = store.write(name, frame, source=source)
    return ImportReport(
        asset=name,
        files=tuple(p.report for p in parsed),
        rows_read=sum(p.report.rows_read for p in parsed),
        rows_written=written.rows_added,
        duplicates_dropped=sum(p.report.duplicates for p in parsed) + cross_dups,
        already_stored=written.already_stored,
        bad_rows=tuple(bad),
        first=frame.index[0],
        last=frame.index[-1],
        write=written,
    )
