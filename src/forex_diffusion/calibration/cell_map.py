"""Conditional quantile recalibration: one per-horizon map per cell of the decision times.

A forecaster can be calibrated on average and still too narrow in some cells and too wide in
others: in a trading session (the New York afternoon, the rollover hours), or at a phase of the
hour (the 5m bars that open on the full and the half hour carry the scheduled releases). This
wrapper fits the same quantile map as :class:`QuantileRecalibrator` separately on the
calibration forecasts of each (horizon, cell) pair, the cell being that of the forecast's
decision time under a :class:`Grouping` (``session``: :mod:`forex_diffusion.sessions`;
``phase``: the 5-minute slot of the hour), and applies to each forecast the map of its cell. A
cell with fewer than ``min_forecasts`` finite calibration PIT values keeps the per-horizon map
fitted on all of them (also stored), so a thin cell never gets a map from a handful of points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forex_diffusion.calibration.location import LocationShrink
from forex_diffusion.calibration.quantile_map import QuantileRecalibrator, independent_by_horizon
from forex_diffusion.sessions import PHASE_MINUTES, PHASES, SESSIONS, phase_of_ns, session_of_ns

FORMAT_VERSION = 2
DEFAULT_MIN_FORECASTS = 100


@dataclass(frozen=True)
class Grouping:
    """A partition of decision times into named cells.

    Attributes:
        name: what the cells are (``session``, ``phase``); stored as the calibration's kind.
        cells: the cell names, in index order.
        cell_of_ns: (N,) UTC nanoseconds -> (N,) cell indices into ``cells``.
        definition: the cells' bounds, stored with the maps and checked on load.
    """

    name: str
    cells: tuple[str, ...]
    cell_of_ns: Callable[[np.ndarray], np.ndarray]
    definition: dict[str, list[int]]


def _phase_grouping() -> Grouping:
    return Grouping(
        "phase",
        PHASES,
        phase_of_ns,
        {name: [k * PHASE_MINUTES, (k + 1) * PHASE_MINUTES] for k, name in enumerate(PHASES)},
    )


GROUPINGS: dict[str, Grouping] = {
    "session": Grouping(
        "session",
        tuple(s.name for s in SESSIONS),
        session_of_ns,
        {s.name: [s.start_hour, s.end_hour] for s in SESSIONS},
    ),
    "phase": _phase_grouping(),
}
"""The groupings a calibration can be conditioned on (``inference.calibration_by``)."""


@dataclass
class CellRecalibrator:
    """Per-(horizon, cell) quantile maps with the per-horizon map as fallback.

    Attributes:
        base: the per-horizon maps fitted on all calibration forecasts.
        by_cell: per cell name, the maps of the horizons whose cell had at least
            ``min_forecasts`` calibration forecasts (a cell with none is absent).
        min_forecasts: the fallback threshold the maps were fitted with.
        grouping: the name of the :data:`GROUPINGS` entry the cells come from.
    """

    base: QuantileRecalibrator
    by_cell: dict[str, QuantileRecalibrator] = field(repr=False)
    min_forecasts: int = DEFAULT_MIN_FORECASTS
    grouping: str = "session"

    @property
    def cells(self) -> Grouping:
        return GROUPINGS[self.grouping]

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
        grouping: str = "session",
        evidence: bool = False,
    ) -> CellRecalibrator:
        """Fit from calibration PIT values ((N,) per horizon) of forecasts made at
        ``decision_ns`` ((N,) UTC nanoseconds), one map per horizon and cell of ``grouping``;
        with a ``location`` shrink (kept by the per-horizon maps, applied before every cell's
        map), the PIT values of the shrunk forecasts. With ``evidence`` every map, per horizon and
        per cell, keeps only the share of its departure from the identity that the independent
        outcomes among its forecasts support (:meth:`QuantileRecalibrator.fit`)."""
        if min_forecasts < 2:
            raise ValueError(f"min_forecasts must be at least 2, got {min_forecasts}")
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping must be one of {sorted(GROUPINGS)}, got {grouping!r}")
        group = GROUPINGS[grouping]
        cell = group.cell_of_ns(decision_ns)
        pits = {int(h): np.asarray(p, dtype=np.float64) for h, p in pit_by_horizon.items()}
        for h, p in pits.items():
            if p.shape != cell.shape:
                raise ValueError(
                    f"horizon {h}: {p.shape[0]} PIT values for {cell.shape[0]} decision times"
                )
        base = QuantileRecalibrator.fit(
            pits,
            shrink,
            knots,
            fitted_on,
            location,
            independent_by_horizon(pits, decision_ns) if evidence else None,
        )
        by_cell: dict[str, QuantileRecalibrator] = {}
        for i, name in enumerate(group.cells):
            rows = cell == i
            cells = {h: p[rows] for h, p in pits.items()}
            counts = {h: int(np.isfinite(p).sum()) for h, p in cells.items()}
            enough = {h: p for h, p in cells.items() if counts[h] >= min_forecasts}
            if enough:
                by_cell[name] = QuantileRecalibrator.fit(
                    enough,
                    shrink,
                    knots,
                    {"forecasts": {str(h): counts[h] for h in enough}},
                    independent=independent_by_horizon(enough, decision_ns[rows])
                    if evidence
                    else None,
                )
        return cls(base, by_cell, int(min_forecasts), grouping)

    def for_cell(self, horizon: int, cell: str) -> QuantileRecalibrator:
        """The recalibrator applied to forecasts of ``horizon`` made in ``cell``."""
        own = self.by_cell.get(cell)
        return own if own is not None and int(horizon) in own.maps else self.base

    def transform_at(
        self, horizon: int, samples: np.ndarray, decision_ns: np.ndarray
    ) -> np.ndarray:
        """Calibrated samples (N, S) of forecasts made at ``decision_ns`` (N,): the location
        shrink of the per-horizon maps (one for every cell), then each row through the map of
        its (horizon, cell) pair (:meth:`QuantileRecalibrator.transform_shrunk`)."""
        x = np.asarray(samples, dtype=np.float64)
        keep = self.base.kept(horizon)
        cell = self.cells.cell_of_ns(decision_ns)
        if cell.shape != x.shape[:1]:
            raise ValueError(f"{x.shape[0]} forecasts for {cell.shape[0]} decision times")
        out = np.empty_like(x)
        for i, name in enumerate(self.cells.cells):
            rows = cell == i
            if rows.any():
                out[rows] = self.for_cell(horizon, name).transform_shrunk(horizon, x[rows], keep)
        return out

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (stored in the checkpoint)."""
        return {
            "kind": self.grouping,
            "format_version": FORMAT_VERSION,
            "min_forecasts": self.min_forecasts,
            "cells": self.cells.definition,
            "base": self.base.to_dict(),
            "by_cell": {name: r.to_dict() for name, r in self.by_cell.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellRecalibrator:
        kind, version = data.get("kind"), data.get("format_version")
        if kind == "session" and version == 1:  # written before phase maps: same cells
            data = {**data, "cells": data.get("sessions"), "by_cell": data.get("by_session")}
        elif kind not in GROUPINGS or version != FORMAT_VERSION:
            raise ValueError(
                f"calibration kind {kind!r} format {version!r} is not supported (expected one "
                f"of {sorted(GROUPINGS)} format {FORMAT_VERSION})"
            )
        group = GROUPINGS[str(kind)]
        if data.get("cells") != group.definition:
            raise ValueError(
                f"calibration fitted on {kind} cells {data.get('cells')}, which differ from "
                f"this version's {group.definition}; refit it with `forex-diffusion calibrate`"
            )
        base = QuantileRecalibrator.from_dict(data["base"])
        by_cell = {
            str(name): QuantileRecalibrator.from_dict(d) for name, d in data["by_cell"].items()
        }
        for name, r in by_cell.items():
            if name not in group.cells:
                raise ValueError(f"{kind} map for unknown cell {name!r} (cells: {group.cells})")
            extra = set(r.horizons) - set(base.horizons)
            if extra:
                raise ValueError(f"{kind} {name} has maps for unknown horizons {sorted(extra)}")
        return cls(base, by_cell, int(data["min_forecasts"]), group.name)


Recalibrator = QuantileRecalibrator | CellRecalibrator
"""What a checkpoint's calibration loads as."""


def load_recalibrator(data: Mapping[str, Any]) -> Recalibrator:
    """A checkpoint's calibration payload as the recalibrator it was stored from (a payload
    without ``kind``, as every per-horizon map is, loads as :class:`QuantileRecalibrator`)."""
    if data.get("kind") is not None:
        return CellRecalibrator.from_dict(data)
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
