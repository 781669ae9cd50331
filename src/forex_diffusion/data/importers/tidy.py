"""The tidy CSV of ../shared/data/fx: ``timestamp,open,high,low,close,volume`` with ISO-8601 UTC
open times such as ``2019-01-01T22:02:00Z`` (plain or gzip)."""

from __future__ import annotations

from forex_diffusion.data.importers.csvread import CsvLayout
from forex_diffusion.data.importers.formats import Format, FormatOptions, split_fields


def _fields(head: list[str]) -> list[str]:
    return [f.lower() for f in split_fields(head[0], ",")] if head else []


def detect(head: list[str]) -> bool:
    return _fields(head)[:5] == ["timestamp", "open", "high", "low", "close"]


def layout(head: list[str], options: FormatOptions) -> CsvLayout:
    names = split_fields(head[0], ",") if head else []
    by_lower = {n.lower(): n for n in names}
    return CsvLayout(
        format="tidy",
        delimiter=",",
        has_header=True,
        time_columns=(by_lower.get("timestamp", "timestamp"),),
        open=by_lower.get("open", "open"),
        high=by_lower.get("high", "high"),
        low=by_lower.get("low", "low"),
        close=by_lower.get("close", "close"),
        volume=by_lower.get("volume"),
        time_format=options.time_format,
        default_tz="UTC",
    )


FORMAT = Format("tidy", "timestamp,open,high,low,close,volume (ISO UTC)", detect, layout)
