"""Fast CSV reading into raw arrays, with exact line numbers for bad rows.

The fast path reads the needed columns with ``pyarrow.csv`` (multi-threaded, typed: time
columns as text, prices and volume as float64). If that fails (a row with the wrong number of
fields, a price that is not a number), the slow path reads every needed column as text with
the reader's invalid-row hook, converts numbers row-wise-safely, and records each bad row.
Both paths return rows identified by their *ordinal* (0-based among the non-empty data lines),
which :meth:`TextSource.nonempty_lines` turns into physical line numbers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from forex_diffusion.data.importers.source import TextSource
from forex_diffusion.errors import DataError

PRICE_KEYS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class CsvLayout:
    """How one file format maps onto candles.

    ``time_columns`` are joined with a space before parsing with ``time_format`` (an Arrow
    strptime format; None means ISO 8601). ``time_cleanup`` is an optional (regex, replacement)
    applied to the joined text first. ``default_tz`` is the clock of naive timestamps (see
    :mod:`forex_diffusion.data.importers.timezones`).
    """

    format: str
    delimiter: str
    has_header: bool
    time_columns: tuple[str, ...]
    open: str
    high: str
    low: str
    close: str
    volume: str | None = None
    column_names: tuple[str, ...] | None = None
    time_format: str | None = None
    time_cleanup: tuple[str, str] | None = None
    default_tz: str = "UTC"

    @property
    def price_columns(self) -> tuple[str, str, str, str]:
        return (self.open, self.high, self.low, self.close)

    @property
    def needed(self) -> list[str]:
        cols = [*self.time_columns, *self.price_columns]
        if self.volume is not None:
            cols.append(self.volume)
        return list(dict.fromkeys(cols))


@dataclass
class RawRows:
    """Rows as read, not yet validated.

    Shapes: ``time_text`` (n,) Arrow strings, or Arrow timestamps when the reader parsed them
    already (fast path of single-column times); ``prices`` (n, 4) float64 open/high/low/close;
    ``volume`` (n,) float64 (0 where the format has none); ``ordinals`` (n,) int64.
    ``bad`` lists (ordinal, reason) for rows the reader already rejected; ``total_rows`` counts
    every non-empty data line.
    """

    time_text: pa.Array
    prices: np.ndarray
    volume: np.ndarray
    ordinals: np.ndarray
    bad: list[tuple[int, str]]
    total_rows: int


def _header_fields(src: TextSource, layout: CsvLayout) -> list[str]:
    head = src.head_lines(1)
    return [f.strip() for f in head[0].split(layout.delimiter)] if head else []


def _check_header(src: TextSource, layout: CsvLayout) -> None:
    if not layout.has_header:
        return
    fields = _header_fields(src, layout)
    missing = [c for c in layout.needed if c not in fields]
    if missing:
        line = int(src.nonempty_lines()[0]) if len(src.nonempty_lines()) else 1
        raise DataError(
            f"{src.name}:{line}: missing column(s) {missing} for the {layout.format} format; "
            f"the header has {fields}. Check --format (or --columns for generic CSV)."
        )


def _options(
    layout: CsvLayout,
    types: dict[str, pa.DataType],
    threads: bool,
    handler: object = None,
    parsers: list[str] | None = None,
) -> tuple[pa_csv.ReadOptions, pa_csv.ParseOptions, pa_csv.ConvertOptions]:
    read = pa_csv.ReadOptions(
        use_threads=threads,
        column_names=list(layout.column_names)
        if not layout.has_header and layout.column_names
        else None,
        block_size=8 << 20,
    )
    parse = pa_csv.ParseOptions(delimiter=layout.delimiter, invalid_row_handler=handler)
    convert = pa_csv.ConvertOptions(
        include_columns=layout.needed,
        column_types=types,
        strings_can_be_null=False,
        timestamp_parsers=parsers,
    )
    return read, parse, convert


def _float_column(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _direct_time_type(src: TextSource, layout: CsvLayout) -> tuple[pa.DataType, list[str]] | None:
    """Let the CSV reader parse a single time column itself (fast) when that is safe: ISO
    times with a UTC offset, or a strptime format without an offset or clean-up step."""
    if len(layout.time_columns) != 1 or layout.time_cleanup is not None:
        return None
    if layout.time_format is None:
        head = src.head_lines(2)
        sample = head[1 if layout.has_header else 0] if len(head) > int(layout.has_header) else ""
        if not sample.split(layout.delimiter)[0].strip().endswith("Z"):
            return None
        return pa.timestamp("s", tz="UTC"), [pa_csv.ISO8601]
    if "%z" in layout.time_format or "%f" in layout.time_format:
        return None
    return pa.timestamp("s"), [layout.time_format]


def read_rows(src: TextSource, layout: CsvLayout) -> RawRows:
    """Read ``src`` with ``layout``; see the module docstring for the two paths.

    Raises:
        DataError: the header lacks a needed column (names the file and line).
    """
    _check_header(src, layout)
    numeric = [*layout.price_columns, *([layout.volume] if layout.volume else [])]
    types: dict[str, pa.DataType] = {c: pa.string() for c in layout.time_columns}
    direct = _direct_time_type(src, layout)
    parsers = None
    if direct is not None:
        types[layout.time_columns[0]], parsers = direct
    types.update({c: pa.float64() for c in numeric if c not in layout.time_columns})
    try:
        table = pa_csv.read_csv(
            io.BytesIO(src.data), *_options(layout, types, threads=True, parsers=parsers)
        )
    except pa.ArrowInvalid:
        return _read_rows_slow(src, layout)
    n = table.num_rows
    prices = np.column_stack([_float_column(table[c]) for c in layout.price_columns])
    volume = _float_column(table[layout.volume]) if layout.volume else np.zeros(n)
    return RawRows(
        time_text=_join_time(table, layout),
        prices=prices.reshape(n, 4),
        volume=volume,
        ordinals=np.arange(n, dtype=np.int64),
        bad=[],
        total_rows=n,
    )


def _join_time(table: pa.Table, layout: CsvLayout) -> pa.Array:
    parts = [table[c].combine_chunks() for c in layout.time_columns]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, " ")


def _read_rows_slow(src: TextSource, layout: CsvLayout) -> RawRows:
    header_rows = 1 if layout.has_header else 0
    rejected: list[tuple[int, str]] = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        ordinal = (row.number - 1 - header_rows) if row.number is not None else -1
        rejected.append(
            (ordinal, f"expected {row.expected_columns} fields, got {row.actual_columns}")
        )
        return "skip"

    types = {c: pa.string() for c in layout.needed}
    try:
        table = pa_csv.read_csv(
            io.BytesIO(src.data), *_options(layout, types, threads=False, handler=on_invalid)
        )
    except pa.ArrowInvalid as exc:
        raise DataError(f"{src.name}: cannot read the file as {layout.format} CSV ({exc})") from exc
    total = len(src.nonempty_lines()) - header_rows
    rejected_ord = np.array(sorted(o for o, _ in rejected if o >= 0), dtype=np.int64)
    ordinals = np.setdiff1d(np.arange(max(total, 0), dtype=np.int64), rejected_ord)[
        : table.num_rows
    ]
    n = table.num_rows
    bad_mask = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    columns: dict[str, np.ndarray] = {}
    for key, col in zip(
        [*PRICE_KEYS, "volume"], [*layout.price_columns, layout.volume], strict=True
    ):
        if col is None:
            columns[key] = np.zeros(n)
            continue
        trimmed = pc.utf8_trim_whitespace(table[col])
        try:  # the whole column converts: NaN/inf are left to the row checks
            columns[key] = _float_column(trimmed.cast(pa.float64()))
            continue
        except pa.ArrowInvalid:
            pass
        text = np.asarray(trimmed.to_numpy(zero_copy_only=False), dtype=object)
        values = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce")
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        unparsed = np.isnan(arr)
        for i in np.flatnonzero(unparsed & ~bad_mask):
            shown = str(text[i]).strip()
            reasons[int(i)] = (
                f"missing value in column '{col}'"
                if shown == ""
                else f"invalid number {shown!r} in column '{col}'"
            )
        bad_mask |= unparsed
        columns[key] = arr
    bad = list(rejected) + [(int(ordinals[i]), reasons[i]) for i in sorted(reasons)]
    keep = ~bad_mask
    prices = np.column_stack([columns[k] for k in PRICE_KEYS]).reshape(n, 4)
    return RawRows(
        time_text=_join_time(table, layout).filter(pa.array(keep)),
        prices=prices[keep],
        volume=columns["volume"][keep],
        ordinals=ordinals[keep],
        bad=bad,
        total_rows=max(total, 0),
    )
