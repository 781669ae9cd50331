"""Reading one candle file (any supported format) into validated bars and a report."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import SanityBounds
from forex_diffusion.data.candles import candle_frame
from forex_diffusion.data.importers.checks import check_bars
from forex_diffusion.data.importers.csvread import CsvLayout, read_rows
from forex_diffusion.data.importers.formats import FormatOptions, detect_format, get_format
from forex_diffusion.data.importers.source import TextSource, open_sources
from forex_diffusion.data.importers.timeparse import parse_times
from forex_diffusion.data.importers.timezones import check_tz, wall_clock_to_utc
from forex_diffusion.errors import DataError

_UTC_NAMES = {"utc", "gmt", "z", "etc/utc"}


@dataclass(frozen=True)
class BadRow:
    """A rejected row: ``file:line: reason``."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class FileReport:
    """Per-file outcome: rows read (non-empty data lines), rows kept, duplicates dropped, bad rows."""

    file: str
    format: str
    tz: str
    rows_read: int
    rows_valid: int
    duplicates: int
    conflicting_duplicates: int
    bad_rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


@dataclass(frozen=True)
class DuplicateConflict:
    """Two rows of one file with the same time and different values (o/h/l/c/v, (5,) each)."""

    file: str
    ts: int
    first_line: int
    first: np.ndarray
    line: int
    values: np.ndarray


def _no_lines(rows: np.ndarray) -> np.ndarray:
    return np.full(len(rows), -1, dtype=np.int64)


@dataclass(frozen=True)
class ParsedFile:
    """Bars of one CSV text: ``ts`` (n,) int64 UTC ns, strictly increasing; ``values`` (n, 5).

    ``lines(rows)`` gives the physical line numbers (k,) of bars ``rows`` (k,) (computed on
    demand); ``conflicts`` lists duplicated times with different values (the first copy is the
    bar in ``ts``/``values``).
    """

    ts: np.ndarray
    values: np.ndarray
    report: FileReport
    bad: tuple[BadRow, ...]
    conflicts: tuple[DuplicateConflict, ...] = ()
    lines: Callable[[np.ndarray], np.ndarray] = field(default=_no_lines, compare=False)

    def frame(self) -> pd.DataFrame:
        return candle_frame(self.ts, self.values)


def _layout_for(src: TextSource, fmt: str, options: FormatOptions) -> CsvLayout:
    head = src.head_lines(5)
    name = detect_format(head, src.name) if fmt == "auto" else fmt
    return get_format(name).layout(head, options)


def _time_reason(text: str | None, layout: CsvLayout) -> str:
    shown = (text or "").strip()
    if not shown:
        return "missing time"
    expected = layout.time_format or "ISO 8601, e.g. 2019-01-02T00:00:00Z"
    return f"cannot parse time {shown!r} (expected {expected})"


def parse_source(
    src: TextSource,
    fmt: str = "auto",
    tz: str | None = None,
    options: FormatOptions | None = None,
    bounds: SanityBounds | None = None,
) -> ParsedFile:
    """Read, convert to UTC and check one CSV text; bad rows and conflicting duplicates are
    returned, not raised."""
    layout = _layout_for(src, fmt, options or FormatOptions())
    header_rows = 1 if layout.has_header else 0

    def line_of(ordinal: int) -> int:
        lines = src.nonempty_lines()  # computed only when a bad row needs a line number
        k = ordinal + header_rows
        return int(lines[k]) if 0 <= k < len(lines) else -1

    raw = read_rows(src, layout)
    bad: list[tuple[int, str]] = list(raw.bad)
    times = parse_times(raw.time_text, layout.time_format, layout.time_cleanup)
    valid = times.valid.copy()
    for i in np.flatnonzero(~valid):
        try:
            text = raw.time_text[int(i)].as_py()
        except (OverflowError, ValueError):  # parsed by the reader, outside Python's dates
            bad.append((int(raw.ordinals[i]), "time out of range (before 1677 or after 2262)"))
            continue
        bad.append(
            (int(raw.ordinals[i]), _time_reason(None if text is None else str(text), layout))
        )
    if times.aware:
        if tz is not None and tz.strip().lower() not in _UTC_NAMES:
            raise DataError(
                f"{src.name}: the times carry their own UTC offset; --tz {tz} does not apply "
                "(drop --tz)"
            )
        zone = "UTC (file)"
        utc = times.ns
    else:
        zone = check_tz(tz) if tz is not None else layout.default_tz
        conv = wall_clock_to_utc(times.ns, zone)
        utc = conv.ns
        for i in np.flatnonzero(valid & ~conv.valid):
            local = pd.Timestamp(int(times.ns[i])).strftime("%Y-%m-%d %H:%M:%S")
            bad.append(
                (
                    int(raw.ordinals[i]),
                    f"local time {local} does not exist or is ambiguous in {zone} (DST switch)",
                )
            )
        valid &= conv.valid
    sel = np.flatnonzero(valid)
    checked = check_bars(utc[sel], raw.prices[sel], raw.volume[sel], bounds)
    for pos, reason in checked.bad:
        extra = ""
        if pos in checked.earlier:
            extra = f" on line {line_of(int(raw.ordinals[sel[checked.earlier[pos]]]))}"
        bad.append((int(raw.ordinals[sel[pos]]), reason + extra))
    keep = sel[checked.keep]
    ts = utc[keep]
    values = np.column_stack([raw.prices[keep], raw.volume[keep]]).reshape(len(keep), 5)

    def row_values(i: int) -> np.ndarray:
        return np.r_[raw.prices[i], raw.volume[i]]

    conflicts = tuple(
        DuplicateConflict(
            src.name,
            int(utc[sel[later]]),
            line_of(int(raw.ordinals[sel[first]])),
            row_values(int(sel[first])),
            line_of(int(raw.ordinals[sel[later]])),
            row_values(int(sel[later])),
        )
        for later, first in checked.conflicts
    )
    kept_ordinals = raw.ordinals[keep]

    def lines(rows: np.ndarray) -> np.ndarray:
        return np.array([line_of(int(o)) for o in kept_ordinals[rows]], dtype=np.int64)

    bad_rows = tuple(
        BadRow(src.name, line_of(o), r) for o, r in sorted(bad, key=lambda item: item[0])
    )
    report = FileReport(
        file=src.name,
        format=layout.format,
        tz=zone,
        rows_read=raw.total_rows,
        rows_valid=len(ts),
        duplicates=checked.duplicates,
        conflicting_duplicates=checked.conflicting_duplicates,
        bad_rows=len(bad_rows),
        first=pd.Timestamp(int(ts[0]), tz="UTC") if len(ts) else None,
        last=pd.Timestamp(int(ts[-1]), tz="UTC") if len(ts) else None,
    )
    return ParsedFile(ts, values, report, bad_rows, conflicts, lines)


def format_bad_rows(bad: list[BadRow] | tuple[BadRow, ...], limit: int = 10) -> str:
    """``file:line: reason`` lines for the first ``limit`` bad rows (and how many more)."""
    shown = [f"  {b}" for b in bad[:limit]]
    if len(bad) > limit:
        shown.append(f"  ... and {len(bad) - limit} more bad row(s)")
    return "\n".join(shown)


def read_candles_file(
    path: str | Path,
    fmt: str = "auto",
    tz: str | None = None,
    skip_bad: bool = False,
    columns: str | Mapping[str, str] | None = None,
    time_format: str | None = None,
    bounds: SanityBounds | None = None,
) -> list[ParsedFile]:
    """Parse one file (a zip may hold several CSV texts) without touching any store.

    Bars outside ``bounds`` (default :class:`SanityBounds`) are bad rows; duplicated times
    with different values are returned in ``ParsedFile.conflicts`` (see ``import_files``).

    Raises:
        DataError: a bad row when ``skip_bad`` is False (names file and line), an unknown format.
        NotFoundError: the file does not exist.
    """
    from forex_diffusion.data.importers.generic import parse_column_mapping

    options = FormatOptions(columns=parse_column_mapping(columns), time_format=time_format)
    if options.columns and fmt not in ("auto", "generic"):
        raise DataError(f"--columns applies to the generic format only, not to {fmt}")
    effective = "generic" if options.columns and fmt == "auto" else fmt
    parsed = [parse_source(src, effective, tz, options, bounds) for src in open_sources(path)]
    bad = [b for p in parsed for b in p.bad]
    if bad and not skip_bad:
        raise DataError(bad_rows_message(bad))
    return parsed


def bad_rows_message(bad: list[BadRow]) -> str:
    files = sorted({b.file for b in bad})
    return (
        f"{len(bad)} bad row(s) in {', '.join(files)}; nothing was imported.\n"
        f"{format_bad_rows(bad)}\n"
        "Fix the file, or rerun with --skip-bad to import the valid rows and list the bad ones."
    )
