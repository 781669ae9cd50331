"""MetaTrader history exports.

* MT4 (History Center export, no header): ``2019.01.02,00:00,open,high,low,close,volume``
  (the time may carry seconds).
* MT5 (tab-separated, with header): ``<DATE>\\t<TIME>\\t<OPEN>\\t<HIGH>\\t<LOW>\\t<CLOSE>\\t<TICKVOL>
  \\t<VOL>\\t<SPREAD>``, dates ``2019.01.02``, times ``00:00:00``; volume is ``<TICKVOL>`` (``<VOL>``
  when there is no tick volume). UTF-16 exports are handled.

MetaTrader writes the broker's server time, which varies by broker (often UTC+2/UTC+3). The
default is UTC; pass ``--tz`` (for example ``--tz Europe/Athens`` or ``--tz UTC+2``) for a
server that is not on UTC.
"""

from __future__ import annotations

import re

from forex_diffusion.data.importers.csvread import CsvLayout
from forex_diffusion.data.importers.formats import Format, FormatOptions, split_fields

_MT4 = re.compile(r"^\d{4}\.\d{2}\.\d{2},\d{1,2}:\d{2}(:\d{2})?,")


def detect_mt4(head: list[str]) -> bool:
    return bool(head) and bool(_MT4.match(head[0]))


def layout_mt4(head: list[str], options: FormatOptions) -> CsvLayout:
    fields = split_fields(head[0], ",") if head else []
    n = max(len(fields), 6)
    names = ("date", "time", "open", "high", "low", "close", "volume")[: min(n, 7)]
    names = names + tuple(f"extra{i}" for i in range(n - len(names)))
    seconds = len(fields) > 1 and fields[1].count(":") == 2
    return CsvLayout(
        format="mt4",
        delimiter=",",
        has_header=False,
        column_names=names,
        time_columns=("date", "time"),
        open="open",
        high="high",
        low="low",
        close="close",
        volume="volume" if n >= 7 else None,
        time_format=options.time_format or ("%Y.%m.%d %H:%M:%S" if seconds else "%Y.%m.%d %H:%M"),
        default_tz="UTC",
    )


def _mt5_delimiter(line: str) -> str:
    return "\t" if "\t" in line else ("," if "," in line else ";")


def detect_mt5(head: list[str]) -> bool:
    return bool(head) and head[0].lstrip().upper().startswith("<DATE>")


def layout_mt5(head: list[str], options: FormatOptions) -> CsvLayout:
    delim = _mt5_delimiter(head[0]) if head else "\t"
    names = split_fields(head[0], delim) if head else []
    upper = {n.upper(): n for n in names}
    volume = upper.get("<TICKVOL>") or upper.get("<VOL>")
    time_format = options.time_format
    if time_format is None:
        data = split_fields(head[1], delim) if len(head) > 1 else []
        seconds = len(data) > 1 and data[1].count(":") == 2
        time_format = "%Y.%m.%d %H:%M:%S" if seconds else "%Y.%m.%d %H:%M"
    return CsvLayout(
        format="mt5",
        delimiter=delim,
        has_header=True,
        time_columns=(upper.get("<DATE>", "<DATE>"), upper.get("<TIME>", "<TIME>")),
        open=upper.get("<OPEN>", "<OPEN>"),
        high=upper.get("<HIGH>", "<HIGH>"),
        low=upper.get("<LOW>", "<LOW>"),
        close=upper.get("<CLOSE>", "<CLOSE>"),
        volume=volume,
        time_format=time_format,
        default_tz="UTC",
    )


MT4 = Format("mt4", "MetaTrader 4 export (2019.01.02,00:00,o,h,l,c,v)", detect_mt4, layout_mt4)
MT5 = Format("mt5", "MetaTrader 5 export (<DATE>\\t<TIME>\\t<OPEN>...)", detect_mt5, layout_mt5)
