"""Generic CSV with a column mapping.

The mapping names the file's columns for ``time`` (one date-time column) or ``date`` + ``time``
(two columns joined with a space), ``open``, ``high``, ``low``, ``close`` and optionally
``volume``, e.g. ``--columns time=Date,open=O,high=H,low=L,close=C``. Columns may also be given
by 0-based position (``time=0,open=1,...``) for files without a header. Times are ISO 8601
unless ``--time-format`` gives a strptime format (``%d/%m/%Y %H:%M``); naive times are UTC
unless ``--tz`` says otherwise. The delimiter (, ; tab |) is taken from the first line.

Without a mapping, a header whose names are recognisable (Date/Time/Timestamp/Datetime and
Open/High/Low/Close[/Volume], any case) is mapped automatically.
"""

from __future__ import annotations

from collections.abc import Mapping

from forex_diffusion.data.importers.csvread import CsvLayout
from forex_diffusion.data.importers.formats import (
    Format,
    FormatOptions,
    sniff_delimiter,
    split_fields,
)
from forex_diffusion.errors import DataError

KEYS = ("time", "date", "open", "high", "low", "close", "volume")
_TIME_NAMES = ("timestamp", "datetime", "date time", "date_time", "time", "open time", "gmt time")
_VOLUME_NAMES = ("volume", "vol", "tickvol", "tick_volume", "tick volume")


def parse_column_mapping(text: str | Mapping[str, str] | None) -> dict[str, str]:
    """``"time=Date,open=O,..."`` (or a mapping) → {"time": "Date", "open": "O", ...}.

    Raises:
        DataError: malformed pairs, unknown keys, or missing required keys.
    """
    if text is None or text == "":
        return {}
    if isinstance(text, Mapping):
        pairs = {str(k).strip().lower(): str(v).strip() for k, v in text.items()}
    else:
        pairs = {}
        for item in str(text).split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise DataError(
                    f"--columns: {item.strip()!r} is not key=column "
                    "(example: time=Date,open=O,high=H,low=L,close=C,volume=V)"
                )
            pairs[key.strip().lower()] = value.strip()
    unknown = sorted(set(pairs) - set(KEYS))
    if unknown:
        raise DataError(f"--columns: unknown key(s) {unknown}; allowed keys are {list(KEYS)}")
    missing = [k for k in ("open", "high", "low", "close") if k not in pairs]
    if "time" not in pairs:
        missing.insert(0, "time")
    if missing:
        raise DataError(
            f"--columns: missing key(s) {missing} (time=..., or date=... with time=..., "
            "and open/high/low/close; volume is optional)"
        )
    return pairs


def _infer_mapping(names: list[str]) -> dict[str, str]:
    lower = {n.lower().strip("<>\"' "): n for n in names}
    mapping: dict[str, str] = {}
    for key in ("open", "high", "low", "close"):
        if key in lower:
            mapping[key] = lower[key]
    if "date" in lower and "time" in lower:
        mapping["date"], mapping["time"] = lower["date"], lower["time"]
    else:
        for cand in (*_TIME_NAMES, "date"):
            if cand in lower:
                mapping["time"] = lower[cand]
                break
    for cand in _VOLUME_NAMES:
        if cand in lower:
            mapping["volume"] = lower[cand]
            break
    return mapping


def missing_candle_columns(head: list[str]) -> list[str]:
    """The required keys (time, open, high, low, close) a candle-like header lacks; [] when it
    has them all or does not look like a candle header (fewer than three of them)."""
    if not head:
        return []
    mapping = _infer_mapping(split_fields(head[0], sniff_delimiter(head[0])))
    required = ("time", "open", "high", "low", "close")
    found = [k for k in required if k in mapping]
    return [k for k in required if k not in mapping] if len(found) >= 3 else []


def detect(head: list[str]) -> bool:
    if not head:
        return False
    mapping = _infer_mapping(split_fields(head[0], sniff_delimiter(head[0])))
    return all(k in mapping for k in ("time", "open", "high", "low", "close"))


def layout(head: list[str], options: FormatOptions) -> CsvLayout:
    first = head[0] if head else ""
    delim = sniff_delimiter(first)
    fields = split_fields(first, delim)
    mapping = parse_column_mapping(options.columns) if options.columns else _infer_mapping(fields)
    if not options.columns:
        mapping = parse_column_mapping(mapping)  # same checks, naming what could not be inferred
    positional = all(v.isdigit() for v in mapping.values())
    names: tuple[str, ...] | None = None
    if positional:
        width = max(len(fields), *(int(v) + 1 for v in mapping.values()))
        names = tuple(f"col{i}" for i in range(width))
        mapping = {k: f"col{int(v)}" for k, v in mapping.items()}
    time_cols = (mapping["date"], mapping["time"]) if "date" in mapping else (mapping["time"],)
    return CsvLayout(
        format="generic",
        delimiter=delim,
        has_header=not positional,
        column_names=names,
        time_columns=time_cols,
        open=mapping["open"],
        high=mapping["high"],
        low=mapping["low"],
        close=mapping["close"],
        volume=mapping.get("volume"),
        time_format=options.time_format,
        default_tz="UTC",
    )


FORMAT = Format("generic", "any CSV with a column mapping (--columns)", detect, layout)
