"""Fit a model's quantile recalibration on its validation range and store it in the checkpoint.

The forecasts used are those whose targets lie inside the calibration range: decision times
t in [start, end − longest horizon], from candles cut at ``end``, so nothing after the range
(in particular the test range) can reach the map. The map is then applied by the inference
service, ``predict`` and ``evaluate`` (``inference.calibrated``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from forex_diffusion.calibration import (
    GROUPINGS,
    CellRecalibrator,
    QuantileRecalibrator,
    Recalibrator,
)
from forex_diffusion.calibration.location import LocationShrink
from forex_diffusion.calibration.quantile_map import independent_by_horizon
from forex_diffusion.data.candles import infer_base_timeframe
from forex_diffusion.data.store import CandleStore
from forex_diffusion.dataset.multi_asset import per_asset_calibrations
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.errors import DataError
from forex_diffusion.forecast import sample_cdf
from forex_diffusion.inference.sssd_inference import SSSDInferenceService
from forex_diffusion.models.checkpoint import attach_calibration, load_checkpoint
from forex_diffusion.timeframes import UtcRange


@dataclass(frozen=True)
class CalibrationResult:
    """The fitted map and what it was fitted on (printed by ``forex-diffusion calibrate``)."""

    calibration: Recalibrator
    range: UtcRange
    forecasts: int
    coverage90_before: dict[int, float]
    coverage90_after: dict[int, float]


def calibration_dataset(
    service: SSSDInferenceService, candles: pd.DataFrame, rng: UtcRange
) -> SSSDTimeSeriesDataset:
    """Decision times in ``rng`` whose every target ends inside it (candles after it unused),
    on the ``inference.calibration_stride`` grid (every 5m bar by default, whatever grid the
    model was trained on: the live service forecasts at every bar)."""
    cut = candles[candles.index < rng.end]
    if cut.empty:
        raise DataError(f"no candles before {rng.end} to calibrate on ({rng})")
    base = infer_base_timeframe(cut.index.asi8)
    last = rng.end - pd.Timedelta(minutes=max(service.horizons))
    stride = service.config.inference.calibration_stride
    return SSSDTimeSeriesDataset.from_candles(
        cut,
        service.config_for_base(base).with_overrides([f"data.decision_stride={stride}"]),
        service.standardizer,
        require_targets=True,
        start=rng.start,
        end=last,
    )


def fit_calibration(
    service: SSSDInferenceService,
    dataset: SSSDTimeSeriesDataset,
    rng: UtcRange,
    num_samples: int,
    max_forecasts: int,
    seed: int = 0,
    by: str = "none",
    min_cell_forecasts: int = 100,
    location: bool = False,
    evidence: bool = False,
) -> CalibrationResult:
    """Fit per-horizon maps from the raw model's PIT on (at most ``max_forecasts``, evenly
    spaced) decision times of ``dataset``; ``by`` = "session" or "phase": per horizon and
    trading session, or 5-minute slot of the hour, of the decision time, a cell with fewer
    than ``min_cell_forecasts`` keeping the per-horizon map (:class:`CellRecalibrator`). With ``location`` the share of each horizon's location
    kept is fitted first (:class:`LocationShrink`, by the CRPS on the same forecasts) and the
    maps from the PIT of the shrunk forecasts. With ``evidence`` each map keeps only the share
    of its departure from the identity that the independent (non-overlapping) outcomes among
    these forecasts support (``quantile_map.evidence_weight``)."""
    if len(dataset) < 50:
        raise DataError(
            f"only {len(dataset)} forecasts with targets inside {rng} to calibrate on "
            "(need 50); widen the validation range or lower inference.calibration_stride"
        )
    idx = np.unique(np.linspace(0, len(dataset) - 1, min(max_forecasts, len(dataset))).astype(int))
    gen = torch.Generator().manual_seed(seed)
    samples = service.sample_log_returns(
        dataset, num_samples, gen, calibrated=False, indices=idx
    )  # (N, H, S)
    y = dataset.log_returns[idx]
    decision_ns = dataset.decision_ns[idx]
    raw = {h: samples[:, j] for j, h in enumerate(service.horizons)}
    outcome = {h: y[:, j] for j, h in enumerate(service.horizons)}
    shrink = LocationShrink.fit(raw, outcome) if location else None
    pit = {
        h: sample_cdf(x if shrink is None else shrink.apply(h, x), outcome[h])
        for h, x in raw.items()
    }
    fitted_on = {
        "range": [rng.start.isoformat(), rng.end.isoformat()],
        "forecasts": len(idx),
        "num_samples": num_samples,
    }
    cal: Recalibrator
    if by in GROUPINGS:
        cal = CellRecalibrator.fit(
            pit,
            decision_ns,
            min_cell_forecasts,
            fitted_on=fitted_on,
            location=shrink,
            grouping=by,
            evidence=evidence,
        )
    elif by == "none":
        independent = independent_by_horizon(pit, decision_ns) if evidence else None
        cal = QuantileRecalibrator.fit(
            pit, fitted_on=fitted_on, location=shrink, independent=independent
        )
    else:
        raise ValueError(f"calibration_by must be 'none' or one of {sorted(GROUPINGS)}, got {by!r}")
    before = {h: _coverage90(x, outcome[h]) for h, x in raw.items()}
    after = {
        h: _coverage90(cal.transform_at(h, x, decision_ns), outcome[h]) for h, x in raw.items()
    }
    return CalibrationResult(cal, rng, len(idx), before, after)


def _coverage90(samples: np.ndarray, y: np.ndarray) -> float:
    u = sample_cdf(samples, y)
    ok = np.isfinite(u)
    return float(np.mean((u[ok] >= 0.05) & (u[ok] <= 0.95)))


def calibrate_checkpoint(
    path: str | Path,
    store: CandleStore,
    rng: UtcRange | None = None,
    num_samples: int | None = None,
    max_forecasts: int | None = None,
    by: str | None = None,
    min_cell_forecasts: int | None = None,
    location: bool | None = None,
    evidence: bool | None = None,
) -> CalibrationResult:
    """Fit on the model's validation range (or ``rng``) with candles from ``store`` and store
    the map in the checkpoint at ``path``. ``by`` and ``min_cell_forecasts`` (None: the
    checkpoint's ``inference.calibration_by`` / ``calibration_min_cell_forecasts``) choose a
    per-horizon or a per-(horizon, cell) map, ``location`` (None: its
    ``calibration_location``) whether a location shrink is fitted, ``evidence`` (None: its
    ``calibration_evidence``) whether the maps are weighed by their evidence
    (:func:`fit_calibration`)."""
    service = SSSDInferenceService.from_checkpoint(path, device="cpu")
    result = _fit_on_validation(
        service, store, rng, num_samples, max_forecasts, by, min_cell_forecasts, location, evidence
    )
    attach_calibration(path, result.calibration.to_dict())
    return result


def calibrate_global_checkpoint(
    path: str | Path,
    store: CandleStore,
    rng: UtcRange | None = None,
    num_samples: int | None = None,
    max_forecasts: int | None = None,
    by: str | None = None,
    min_cell_forecasts: int | None = None,
    location: bool | None = None,
    evidence: bool | None = None,
) -> dict[str, CalibrationResult]:
    """A global model's maps, one per asset, each fitted on that asset's validation forecasts
    (its own standardizer and embedding row), stored together in the checkpoint at ``path``
    (``by``, ``min_cell_forecasts``, ``location``, ``evidence``: as in :func:`calibrate_checkpoint`)."""
    assets = load_checkpoint(path).config.model.assets
    results = {
        asset: _fit_on_validation(
            SSSDInferenceService.from_checkpoint(path, device="cpu", asset=asset),
            store,
            rng,
            num_samples,
            max_forecasts,
            by,
            min_cell_forecasts,
            location,
            evidence,
        )
        for asset in assets
    }
    attach_calibration(
        path, per_asset_calibrations({a: r.calibration.to_dict() for a, r in results.items()})
    )
    return results


def _fit_on_validation(
    service: SSSDInferenceService,
    store: CandleStore,
    rng: UtcRange | None,
    num_samples: int | None,
    max_forecasts: int | None,
    by: str | None,
    min_cell_forecasts: int | None,
    location: bool | None,
    evidence: bool | None = None,
) -> CalibrationResult:
    icfg = service.config.inference
    rng = rng or service.config.data.splits.val.utc_range("validation range")
    candles = store.load(service.asset, start=rng.start - service.history_span, end=rng.end)
    dataset = calibration_dataset(service, candles, rng)
    return fit_calibration(
        service,
        dataset,
        rng,
        num_samples or icfg.calibration_samples,
        max_forecasts or icfg.calibration_forecasts,
        seed=service.config.seed,
        by=by or icfg.calibration_by,
        min_cell_forecasts=min_cell_forecasts or icfg.calibration_min_cell_forecasts,
        location=icfg.calibration_location if location is None else location,
        evidence=icfg.calibration_evidence if evidence is None else evidence,
    )
