"""Session-conditional quantile recalibration: one per-horizon map per trading session.

A forecaster can be calibrated on average and still too narrow in one session (the New York
afternoon, the rollover hours) and too wide in another. This wrapper fits the same quantile map
as :class:`QuantileRecalibrator` separately on the calibration forecasts of each (horizon,
session) cell, the session being that of the forecast's decision time
(:mod:`forex_diffusion.sessions`), and applies to each forecast the map of its cell. A cell
with fewer than ``min_forecasts`` finite calibration PIT values keeps the per-horizon map fitted
on all of them (also stored), so a thin session never gets a map from a handful of points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forex_diffusion.calibration.location import LocationShrink
from forex_diffusion.calibration.quantile_map import QuantileRecalibrator
from forex_diffusion.sessions import SESSIONS, session_of_ns

KIND = "session"
FORMAT_VERSION = 1
DEFAULT_MIN_FORECASTS = 100


def _definition() -> dict[str, list[int]]:
    return {s.name: [s.start_hour, s.end_hour] for s in SESSIONS}


@dataclass
class SessionRecalibrator:
    """Per-(horizon, session) quantile maps with the per-horizon map as fallback.

    Attributes:
        base: the per-horizon maps fitted on all calibration forecasts.
        by_session: per session name, the maps of the horizons whose cell had at least
            ``min_forecasts`` calibration forecasts (a session with none is absent).
        min_forecasts: the fallback threshold the maps were fitted with.
    """

    base: QuantileRecalibrator
    by_session: dict[str, QuantileRecalibrator] = field(repr=False)
    min_forecasts: int = DEFAULT_MIN_FORECASTS

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.base.horizons

    @property
    def fitted_on(self) -> dict[str, Any]:
        return self.base.fitted_on

    @property
    def location(self) -> LocationShrink | None:
        return self.base.location

    @classmethod
    def fit(
        cls,
        pit_by_horizon: Mapping[int, np.ndarray],
        decision_ns: np.ndarray,
        min_forecasts: int = DEFAULT_MIN_FORECASTS,
        shrink: float = 0.02,
        knots: int = 200,
        fitted_on: Mapping[str, Any] | None = None,
        location: LocationShrink | None = None,
    ) -> SessionRecalibrator:
        """Fit from calibration PIT values ((N,) per horizon) of forecasts made at
        ``decision_ns`` ((N,) UTC nanoseconds); with a ``location`` shrink (kept by the
        per-horizon maps, applied before every cell's map), the PIT values of the shrunk
        forecasts."""
        if min_forecasts < 2:
            raise ValueError(f"min_forecasts must be at least 2, got {min_forecasts}")
        session = session_of_ns(decision_ns)
        pits = {int(h): np.asarray(p, dtype=np.float64) for h, p in pit_by_horizon.items()}
        for h, p in pits.items():
            if p.shape != session.shape:
                raise ValueError(
                    f"horizon {h}: {p.shape[0]} PIT values for {session.shape[0]} decision times"
                )
        base = QuantileRecalibrator.fit(pits, shrink, knots, fitted_on, location)
        by_session: dict[str, QuantileRecalibrator] = {}
        for i, s in enumerate(SESSIONS):
            cells = {h: p[session == i] for h, p in pits.items()}
            counts = {h: int(np.isfinite(p).sum()) for h, p in cells.items()}
            enough = {h: p for h, p in cells.items() if counts[h] >= min_forecasts}
            if enough:
                by_session[s.name] = QuantileRecalibrator.fit(
                    enough, shrink, knots, {"forecasts": {str(h): counts[h] for h in enough}}
                )
        return cls(base, by_session, int(min_forecasts))

    def for_cell(self, horizon: int, session: str) -> QuantileRecalibrator:
        """The recalibrator applied to forecasts of ``horizon`` made in ``session``."""
        own = self.by_session.get(session)
        return own if own is not None and int(horizon) in own.maps else self.base

    def transform_at(
        self, horizon: int, samples: np.ndarray, decision_ns: np.ndarray
    ) -> np.ndarray:
        """Calibrated samples (N, S) of forecasts made at ``decision_ns`` (N,): the location
        shrink of the per-horizon maps (one for every session), then each row through the map of
        its (horizon, session) cell (:meth:`QuantileRecalibrator.transform_shrunk`)."""
        x = np.asarray(samples, dtype=np.float64)
        keep = self.base.kept(horizon)
        session = session_of_ns(decision_ns)
        if session.shape != x.shape[:1]:
            raise ValueError(f"{x.shape[0]} forecasts for {session.shape[0]} decision times")
        out = np.empty_like(x)
        for i, s in enumerate(SESSIONS):
            rows = session == i
            if rows.any():
                cell = self.for_cell(horizon, s.name)
                out[rows] = cell.transform_shrunk(horizon, x[rows], keep)
        return out

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (stored in the checkpoint)."""
        return {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "min_forecasts": self.min_forecasts,
            "sessions": _definition(),
            "base": self.base.to_dict(),
            "by_session": {name: r.to_dict() for name, r in self.by_session.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionRecalibrator:
        if data.get("kind") != KIND or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"calibration kind {data.get('kind')!r} format {data.get('format_version')!r} "
                f"is not supported (expected {KIND!r} format {FORMAT_VERSION})"
            )
        if data.get("sessions") != _definition():
            raise ValueError(
                f"calibration fitted on sessions {data.get('sessions')}, which differ from "
                f"this version's {_definition()}; refit it with `forex-diffusion calibrate`"
            )
        base = QuantileRecalibrator.from_dict(data["base"])
        by_session = {
            str(name): QuantileRecalibrator.from_dict(d) for name, d in data["by_session"].items()
        }
        for name, r in by_session.items():
            extra = set(r.horizons) - set(base.horizons)
            if extra:
                raise ValueError(f"session {name} has maps for unknown horizons {sorted(extra)}")
        return cls(base, by_session, int(data["min_forecasts"]))


Recalibrator = QuantileRecalibrator | SessionRecalibrator
"""What a checkpoint's calibration loads as."""


def load_recalibrator(data: Mapping[str, Any]) -> Recalibrator:
    """A checkpoint's calibration payload as the recalibrator it was stored from (a payload
    without ``kind``, as every per-horizon map is, loads as :class:`QuantileRecalibrator`)."""
    if data.get("kind") == KIND:
        return SessionRecalibrator.from_dict(data)
    return QuantileRecalibrator.from_dict(data)


def pooled_location(payloads: Mapping[str, Mapping[str, Any]]) -> QuantileRecalibrator | None:
    """For an asset with no calibration of its own (one a global model never saw): the location
    shrink pooled over the calibrations of the model's assets (``payloads``: asset → stored
    calibration), with identity maps; None when any of them has no location shrink."""
    shrinks = [load_recalibrator(p).location for p in payloads.values()]
    if not shrinks or any(s is None for s in shrinks):
        return None
    fitted = [s for s in shrinks if s is not None]
    return QuantileRecalibrator.location_only(
        LocationShrink.pool(fitted),
        {"pooled_from": sorted(payloads), "maps": "identity (no forecasts of this asset)"},
    )
