"""HistData.com Generic ASCII M1 bars: ``YYYYMMDD HHMMSS;open;high;low;close;volume`` without a
header, as ``.csv`` or the ``.zip`` HistData ships (its ``.txt`` status report is ignored).

The timestamps are HistData's wall clock, which behaves like New York local time (UTC−5 in
winter, UTC−4 in summer) switching on US DST dates for data years ≤ 2018 and EU dates for
≥ 2019; they are converted to UTC by the ``histdata`` rule of
:mod:`forex_diffusion.data.importers.timezones` unless ``--tz`` says otherwise.
"""

from __future__ import annotations

import re

from forex_diffusion.data.importers.csvread import CsvLayout
from forex_diffusion.data.importers.formats import Format, FormatOptions

_LINE = re.compile(r"^\d{8} \d{6};")


def detect(head: list[str]) -> bool:
    return bool(head) and bool(_LINE.match(head[0]))


def layout(head: list[str], options: FormatOptions) -> CsvLayout:
    n_fields = len(head[0].split(";")) if head else 6
    names = ("time", "open", "high", "low", "close", "volume")[: max(n_fields, 5)]
    if n_fields > 6:
        names = names + tuple(f"extra{i}" for i in range(n_fields - 6))
    return CsvLayout(
        format="histdata",
        delimiter=";",
        has_header=False,
        column_names=names,
        time_columns=("time",),
        open="open",
        high="high",
        low="low",
        close="close",
        volume="volume" if n_fields >= 6 else None,
        time_format=options.time_format or "%Y%m%d %H%M%S",
        default_tz="histdata",
    )


FORMAT = Format("histdata", "HistData ASCII M1 (YYYYMMDD HHMMSS;o;h;l;c;v)", detect, layout)
