"""Trading sessions by the UTC hour of a decision time, and phases of the hour by its minute: the
one definition that the evaluation's conditional coverage and the conditional recalibration
share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NS_PER_HOUR = 3_600_000_000_000
_NS_PER_MINUTE = 60_000_000_000
PHASE_MINUTES = 5
PHASES: tuple[str, ...] = tuple(f":{m:02d}" for m in range(0, 60, PHASE_MINUTES))
"""The phases of the hour: the 5-minute slots of the decision time's minute, named by their
first minute. The 5m bars that open on the full and the half hour (:00, :30) carry the
scheduled releases."""


@dataclass(frozen=True)
class Session:
    """A trading session: decision times whose UTC hour is in [start_hour, end_hour)."""

    name: str
    start_hour: int
    end_hour: int

    def label(self) -> str:
        return f"{self.name} {self.start_hour:02d}–{self.end_hour:02d}"


SESSIONS: tuple[Session, ...] = (
    Session("Asia", 0, 7),
    Session("London", 7, 13),
    Session("New York", 13, 21),
    Session("Late", 21, 24),
)
"""The sessions, covering the 24 UTC hours without overlap. London's afternoon overlap with
New York counts as New York. 21–24 UTC (New York close, the daily rollover, Sydney and
Wellington open, thin liquidity and wide spreads) is its own group rather than part of Asia,
so that the rollover neither hides in nor distorts the Asian session."""


def session_index(hours: np.ndarray) -> np.ndarray:
    """Index into :data:`SESSIONS` of each UTC hour.

    Args:
        hours: (N,) integer hours in [0, 24).

    Returns:
        (N,) session indices.
    """
    h = np.asarray(hours, dtype=np.int64)
    if h.size and (h.min() < 0 or h.max() > 23):
        raise ValueError("hours must lie in [0, 24)")
    by_hour = np.empty(24, dtype=np.int64)
    for i, s in enumerate(SESSIONS):
        by_hour[s.start_hour : s.end_hour] = i
    return by_hour[h]


def session_of_ns(decision_ns: np.ndarray) -> np.ndarray:
    """Index into :data:`SESSIONS` of each decision time.

    Args:
        decision_ns: (N,) UTC decision times as integer nanoseconds since the epoch.

    Returns:
        (N,) session indices.
    """
    ns = np.asarray(decision_ns, dtype=np.int64)
    return session_index(np.floor_divide(ns, _NS_PER_HOUR) % 24)


_SESSION_BY_HOUR = tuple(int(k) for k in session_index(np.arange(24)))


def session_of(decision_ns: int) -> int:
    """:func:`session_of_ns` of one decision time (UTC integer nanoseconds)."""
    return _SESSION_BY_HOUR[(int(decision_ns) // _NS_PER_HOUR) % 24]


def phase_index(minutes: np.ndarray) -> np.ndarray:
    """Index into :data:`PHASES` of each minute of the hour ((N,) integers in [0, 60))."""
    m = np.asarray(minutes, dtype=np.int64)
    if m.size and (m.min() < 0 or m.max() > 59):
        raise ValueError("minutes must lie in [0, 60)")
    return m // PHASE_MINUTES


def phase_of_ns(decision_ns: np.ndarray) -> np.ndarray:
    """Index into :data:`PHASES` of each decision time ((N,) UTC integer nanoseconds)."""
    ns = np.asarray(decision_ns, dtype=np.int64)
    return phase_index(np.floor_divide(ns, _NS_PER_MINUTE) % 60)


def phase_of(decision_ns: int) -> int:
    """:func:`phase_of_ns` of one decision time (UTC integer nanoseconds)."""
    return (int(decision_ns) // _NS_PER_MINUTE) % 60 // PHASE_MINUTES
