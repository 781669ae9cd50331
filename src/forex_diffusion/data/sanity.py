"""Plausibility of bars (SPEC §9): times not far in the future, prices in a sane range, no
absurd jumps. The bounds are per asset (``asset.sanity`` in the config, :class:`SanityBounds`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import SanityBounds
from forex_diffusion.timeframes import NS_PER_DAY


def _ts(ns: int | np.integer) -> str:
    return pd.Timestamp(int(ns), tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")


def sanity_problems(
    ts: np.ndarray,
    prices: np.ndarray,
    bounds: SanityBounds,
    now: pd.Timestamp | None = None,
) -> list[tuple[int, str]]:
    """(position, reason) of bars outside ``bounds``, first reason per bar, by position.

    Args:
        ts: (n,) int64 UTC ns open times, increasing.
        prices: (n, 4) float64 open/high/low/close, finite and positive.
        bounds: the asset's sanity bounds.
        now: the current time (default: the clock); open times after now + max_future_days
            are flagged.
    """
    reasons: dict[int, str] = {}

    def flag(mask: np.ndarray, describe: Callable[[int], str]) -> None:
        for i in np.flatnonzero(mask):
            if int(i) not in reasons:
                reasons[int(i)] = describe(int(i))

    clock = pd.Timestamp.now(tz="UTC") if now is None else now
    latest = clock.value + int(bounds.max_future_days * NS_PER_DAY)
    flag(
        ts > latest,
        lambda i: (
            f"time {_ts(int(ts[i]))} is in the future (after now + {bounds.max_future_days:g} day(s), "
            "asset.sanity.max_future_days)"
        ),
    )
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        low_p, high_p = prices.min(axis=1), prices.max(axis=1)
        flag(
            (high_p > bounds.max_price) | (low_p < bounds.min_price),
            lambda i: (
                f"price {(high_p[i] if high_p[i] > bounds.max_price else low_p[i]):g} outside "
                f"[{bounds.min_price:g}, {bounds.max_price:g}] (asset.sanity.min_price/max_price)"
            ),
        )
        o, h, low, c = prices.T
        flag(
            h / low - 1 > bounds.max_jump,
            lambda i: (
                f"range low {low[i]:g} to high {h[i]:g} is a jump of {h[i] / low[i] - 1:.0%} "
                f"within one bar (limit {bounds.max_jump:.0%}, asset.sanity.max_jump)"
            ),
        )
        if len(c) > 1:
            change = np.abs(o[1:] / c[:-1] - 1)
            close_change = np.abs(c[1:] / c[:-1] - 1)
            step = np.maximum(change, close_change)
            jump = np.r_[False, step > bounds.max_jump]
            flag(
                jump,
                lambda i: (
                    f"close {c[i]:g} after close {c[i - 1]:g} of the bar at {_ts(int(ts[i - 1]))} is a "
                    f"jump of {max(abs(o[i] / c[i - 1] - 1), abs(c[i] / c[i - 1] - 1)):.0%} "
                    f"(limit {bounds.max_jump:.0%}, asset.sanity.max_jump)"
                ),
            )
    return sorted(reasons.items())
