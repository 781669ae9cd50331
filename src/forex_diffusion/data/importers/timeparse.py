"""Parsing bar times from text into int64 nanoseconds (vectorised, with per-row failures)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


@dataclass(frozen=True)
class ParsedTimes:
    """``ns``: (n,) int64 nanoseconds since the epoch (UTC when ``aware``, else the file's own
    wall clock); ``valid``: (n,) bool, False where the text could not be parsed."""

    ns: np.ndarray
    valid: np.ndarray
    aware: bool


_NS_FACTOR = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _to_ns(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (n,) in any unit → int64 ns; times outside 1677-2262 count as invalid."""
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    factor = _NS_FACTOR[arr.type.unit]
    raw = np.asarray(arr.cast(pa.int64()).fill_null(0).to_numpy(), dtype=np.int64)
    in_range = np.abs(raw) <= np.iinfo(np.int64).max // factor
    ns = np.where(in_range, raw, 0) * factor
    return ns, valid & in_range


def parse_times(
    text: pa.Array, time_format: str | None, cleanup: tuple[str, str] | None = None
) -> ParsedTimes:
    """Parse ``text`` (n,) with an Arrow strptime ``time_format``, or ISO 8601 when None.

    Offsets in the text (``Z``, ``+01:00``, or ``%z`` in the format) make the result aware (UTC);
    otherwise it is the naive wall clock of the file.
    """
    if pa.types.is_timestamp(text.type):  # already parsed by the CSV reader
        ns, valid = _to_ns(text)
        return ParsedTimes(ns, valid, aware=text.type.tz is not None)
    if cleanup is not None:
        text = pc.replace_substring_regex(text, pattern=cleanup[0], replacement=cleanup[1])
    if len(text) == 0:
        return ParsedTimes(np.zeros(0, np.int64), np.zeros(0, bool), False)
    if time_format is not None:
        parsed = pc.strptime(text, format=time_format, unit="s", error_is_null=True)
        ns, valid = _to_ns(parsed)
        return ParsedTimes(ns, valid, aware="%z" in time_format)
    return _parse_iso(text)


def _parse_iso(text: pa.Array) -> ParsedTimes:
    """ISO 8601 times; the file is aware (UTC offsets) when most times carry an offset, and a
    time of the other kind (an offset missing or extra) is invalid."""
    has_offset = np.asarray(
        pc.match_substring_regex(pc.utf8_trim_whitespace(text), _OFFSET.pattern)
        .fill_null(False)
        .to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    aware = bool(has_offset.sum() * 2 > len(text))
    odd = has_offset != aware
    if odd.any():
        text = pc.if_else(pa.array(odd), pa.scalar(None, pa.string()), text)
    target = pa.timestamp("ns", tz="UTC") if aware else pa.timestamp("ns")
    try:
        ns, valid = _to_ns(text.cast(target))
        return ParsedTimes(ns, valid, aware)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass  # not plain ISO-8601 for Arrow's fast cast: fall back to pandas' parser below
    values = pd.Series(np.asarray(text.to_numpy(zero_copy_only=False), dtype=object))
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=aware)
    if not isinstance(parsed.dtype, pd.DatetimeTZDtype) and aware:
        parsed = pd.to_datetime(values, errors="coerce", utc=True)
    valid = parsed.notna().to_numpy()
    if aware:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    stamps = parsed.to_numpy()  # datetime64 in pandas' chosen unit; out-of-ns-range is invalid
    factor = _NS_FACTOR[np.datetime_data(stamps.dtype)[0]]
    raw = np.where(valid, stamps.astype("int64"), 0)
    in_range = np.abs(raw) <= np.iinfo(np.int64).max // factor
    valid = valid & in_range
    ns = np.where(valid, raw, 0) * factor
    return ParsedTimes(ns, valid, aware)
