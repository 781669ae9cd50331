"""Vectorised row checks of imported bars (SPEC §3, §9).

Every check yields a mask over the rows and a reason per flagged row. Duplicated timestamps
with identical values are not errors: later copies are dropped and counted (the first copy is
kept). Duplicated timestamps with *different* values are conflicts, returned as pairs for the
caller to refuse or resolve (``--on-conflict``). Bars outside the asset's sanity bounds
(:mod:`forex_diffusion.data.sanity`) are bad rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import SanityBounds
from forex_diffusion.data.sanity import sanity_problems
from forex_diffusion.timeframes import NS_PER_MIN

_NAMES = ("open", "high", "low", "close")


@dataclass(frozen=True)
class CheckResult:
    """``bad``: (position, reason) for rows that break a rule (positions into the input arrays);
    ``keep``: (n,) bool, rows to import; ``duplicates``: later copies of a timestamp, dropped;
    ``conflicting_duplicates``: how many of those differ in value from the first copy;
    ``earlier``: for a non-monotonic row, the position of the later-timed row before it;
    ``conflicts``: (later copy, first copy) positions of duplicates that differ in value."""

    bad: list[tuple[int, str]]
    keep: np.ndarray
    duplicates: int
    conflicting_duplicates: int
    earlier: dict[int, int]
    conflicts: list[tuple[int, int]]


def _describe_column(
    what: str, name: str, col: np.ndarray, show_value: bool
) -> Callable[[int], str]:
    def describe(i: int) -> str:
        value = f" {col[i]:g}" if show_value else ""
        return f"{what}{value} in column '{name}'"

    return describe


def _ts(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def check_bars(
    ts: np.ndarray,
    prices: np.ndarray,
    volume: np.ndarray,
    bounds: SanityBounds | None = None,
    now: pd.Timestamp | None = None,
) -> CheckResult:
    """Check bars: ``ts`` (n,) int64 UTC ns, ``prices`` (n, 4) open/high/low/close, ``volume`` (n,).

    Row rules: finite values, positive prices, high >= max(open, close), low <= min(open,
    close), non-negative volume, times on whole minutes. Order rules (on the rows that pass):
    a time earlier than an earlier row's time is non-monotonic (bad) unless that exact time
    was seen before, in which case the row is a duplicate (dropped, counted; a conflict when
    its values differ). Sanity rules (on the remaining rows, in order): ``bounds`` (default
    :class:`SanityBounds`) as of ``now`` (default: the clock).
    """
    n = len(ts)
    reasons: dict[int, str] = {}

    def flag(mask: np.ndarray, describe: Callable[[int], str]) -> None:
        for i in np.flatnonzero(mask):
            if int(i) not in reasons:
                reasons[int(i)] = describe(int(i))

    finite = np.isfinite(prices)
    for j, name in enumerate(_NAMES):
        col = prices[:, j]
        flag(np.isnan(col), _describe_column("missing or NaN value", name, col, False))
        flag(np.isinf(col), _describe_column("infinite value", name, col, True))
        flag(finite[:, j] & (col <= 0), _describe_column("non-positive price", name, col, True))
    flag(~np.isfinite(volume), lambda i: f"missing, NaN or infinite volume ({volume[i]})")
    flag(volume < 0, lambda i: f"negative volume {volume[i]:g}")
    o, h, low, c = prices.T
    with np.errstate(invalid="ignore"):
        flag(
            h < np.maximum(o, c),
            lambda i: f"high {h[i]:g} is below max(open, close) = {max(o[i], c[i]):g}",
        )
        flag(
            low > np.minimum(o, c),
            lambda i: f"low {low[i]:g} is above min(open, close) = {min(o[i], c[i]):g}",
        )
    flag(
        ts % NS_PER_MIN != 0,
        lambda i: (
            f"time {_ts(int(ts[i]))} is not on a whole minute (bars are labelled by open minute)"
        ),
    )
    row_ok = np.ones(n, dtype=bool)
    if reasons:
        row_ok[list(reasons)] = False

    pos = np.flatnonzero(row_ok)
    t = ts[pos]
    dup = pd.Index(t).duplicated(keep="first") if len(t) else np.zeros(0, dtype=bool)
    dup = np.asarray(dup, dtype=bool)
    running = np.maximum.accumulate(t) if len(t) else t
    prev_max = np.r_[np.iinfo(np.int64).min, running[:-1]] if len(t) else t
    back = (t < prev_max) & ~dup
    earlier: dict[int, int] = {}
    if back.any():
        where_max = np.where(t >= prev_max, np.arange(len(t)), 0)
        holder = np.maximum.accumulate(where_max)
        for k in np.flatnonzero(back):
            prev = int(holder[k - 1]) if k else 0
            earlier[int(pos[k])] = int(pos[prev])
            reasons[int(pos[k])] = (
                f"time {_ts(int(t[k]))} is earlier than a previous bar at "
                f"{_ts(int(t[prev]))} (timestamps must increase)"
            )
    pairs: list[tuple[int, int]] = []
    if dup.any():
        first_of = pd.Series(np.arange(len(t))).groupby(t).transform("first").to_numpy()
        rows = pos[dup]
        firsts = pos[first_of[dup]]
        differ = (prices[rows] != prices[firsts]).any(axis=1) | (volume[rows] != volume[firsts])
        pairs = [(int(a), int(b)) for a, b in zip(rows[differ], firsts[differ], strict=True)]
    keep = np.zeros(n, dtype=bool)
    keep[pos[~dup & ~back]] = True
    kept = np.flatnonzero(keep)
    for j, reason in sanity_problems(ts[kept], prices[kept], bounds or SanityBounds(), now):
        reasons[int(kept[j])] = reason
        keep[kept[j]] = False
    bad = sorted(reasons.items())
    return CheckResult(bad, keep, int(dup.sum()), len(pairs), earlier, pairs)
