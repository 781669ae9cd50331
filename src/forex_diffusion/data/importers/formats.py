"""The registry of file formats and content-based auto-detection."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from forex_diffusion.data.importers.csvread import CsvLayout
from forex_diffusion.errors import DataError


@dataclass(frozen=True)
class FormatOptions:
    """User options that shape a layout: a generic column mapping and a time format."""

    columns: Mapping[str, str] = field(default_factory=dict)
    time_format: str | None = None


@dataclass(frozen=True)
class Format:
    """One supported file format: how to recognise it and how to read it."""

    name: str
    description: str
    detect: Callable[[list[str]], bool]
    layout: Callable[[list[str], FormatOptions], CsvLayout]


def split_fields(line: str, delimiter: str) -> list[str]:
    return [f.strip() for f in line.split(delimiter)]


def sniff_delimiter(line: str) -> str:
    """The delimiter among , ; tab | that splits ``line`` into the most fields."""
    return max([",", ";", "\t", "|"], key=lambda d: len(line.split(d)))


def registry() -> dict[str, Format]:
    from forex_diffusion.data.importers import dukascopy, generic, histdata, metatrader, tidy

    formats = [
        histdata.FORMAT,
        metatrader.MT4,
        metatrader.MT5,
        dukascopy.FORMAT,
        tidy.FORMAT,
        generic.FORMAT,
    ]
    return {f.name: f for f in formats}


FORMAT_NAMES = ("tidy", "histdata", "mt4", "mt5", "dukascopy", "generic")
_TICK = re.compile(r"^\d{8} \d{9},")


def detect_format(head: list[str], where: str) -> str:
    """Name of the format whose signature matches the first lines ``head`` of a file.

    Raises:
        DataError: no format matches; the message shows the first line and the options.
    """
    from forex_diffusion.data.importers.generic import missing_candle_columns

    for name, fmt in registry().items():
        if fmt.detect(head):
            return name
    first = head[0][:120] if head else ""
    missing = missing_candle_columns(head)
    if missing:
        raise DataError(
            f"{where}:1: missing required column(s) {missing}: the header {first!r} names "
            "candle columns but not all of time, open, high, low and close. Add the column, "
            "or map the columns with --format generic --columns time=...,open=...,high=...,"
            "low=...,close=..."
        )
    hint = (
        " This looks like HistData tick data; import 1-minute bars (M1) instead."
        if _TICK.match(first)
        else ""
    )
    raise DataError(
        f"{where}:1: cannot recognise the file format from its first line {first!r}.{hint} "
        f"Pass --format ({', '.join(FORMAT_NAMES)}); for a generic CSV also pass "
        "--columns time=...,open=...,high=...,low=...,close=..."
    )


def get_format(name: str) -> Format:
    formats = registry()
    if name not in formats:
        raise DataError(f"unknown format {name!r}: use auto or one of {', '.join(FORMAT_NAMES)}")
    return formats[name]
