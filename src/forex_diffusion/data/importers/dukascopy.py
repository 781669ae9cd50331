"""Dukascopy historical-data CSV exports: ``Gmt time,Open,High,Low,Close,Volume`` with times like
``02.01.2019 00:00:00.000`` (UTC). Exports in local time (``Local time`` header, times like
``02.01.2019 00:00:00.000 GMT+0100``) are read with their own offset."""

from __future__ import annotations

from forex_diffusion.data.importers.csvread import CsvLayout
from forex_diffusion.data.importers.formats import Format, FormatOptions, split_fields


def _delimiter(line: str) -> str:
    rest = line.lower().split("time", 1)[1] if "time" in line.lower() else ","
    return rest[:1] if rest[:1] in {",", ";", "\t"} else ","


def detect(head: list[str]) -> bool:
    if not head:
        return False
    first = head[0].strip().lower()
    return first.startswith(("gmt time", "local time"))


def layout(head: list[str], options: FormatOptions) -> CsvLayout:
    delim = _delimiter(head[0]) if head else ","
    names = split_fields(head[0], delim) if head else []
    by_lower = {n.lower(): n for n in names}
    local = "local time" in by_lower
    time_col = by_lower.get("local time") if local else by_lower.get("gmt time", "Gmt time")
    if local:
        cleanup = (r"(?:\.0+)? GMT([+-]\d{4})$", r" \1")
        time_format = "%d.%m.%Y %H:%M:%S %z"
    else:
        cleanup = (r"\.0+$", "")
        time_format = "%d.%m.%Y %H:%M:%S"
    return CsvLayout(
        format="dukascopy",
        delimiter=delim,
        has_header=True,
        time_columns=(str(time_col),),
        open=by_lower.get("open", "Open"),
        high=by_lower.get("high", "High"),
        low=by_lower.get("low", "Low"),
        close=by_lower.get("close", "Close"),
        volume=by_lower.get("volume"),
        time_format=options.time_format or time_format,
        time_cleanup=None if options.time_format else cleanup,
        default_tz="UTC",
    )


FORMAT = Format(
    "dukascopy", "Dukascopy export (Gmt time,Open,High,Low,Close,Volume)", detect, layout
)
