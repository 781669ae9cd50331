"""Walk-forward evaluation of a trained SSSD model against honest baselines (SPEC §7).

```python
result = evaluate(config, "EURUSD", "2023-07-01", "2023-12-31")   # the asset's best model
print(result.text())                                              # the report's first table
```

Decision times are the closes of existing 5m bars every ``stride`` bars (clock grid) in the
evaluated range. At each one the model (from its checkpoint, features built with its own
standardizer) and every baseline (tuned before the evaluated range, fed only bars closed by t)
forecast the log return of every horizon; all forecasters are scored on the same decision
times: those whose target bars all exist (targets in gaps are excluded and counted), with full
model windows and defined baselines. The report goes to ``out_dir`` and one row per forecaster
and horizon to ``sssd_performance_metrics``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger
from tqdm import tqdm

from forex_diffusion.calibration.conformal import AdaptiveConformal, adaptive_conformal_samples
from forex_diffusion.config.sssd_config import (
    AdaptiveConformalConfig,
    EvaluationConfig,
    SSSDConfig,
    default_pip_size,
)
from forex_diffusion.data.resample import resample_ohlc
from forex_diffusion.data.store import CandleStore, resolve_data_dir
from forex_diffusion.dataset.multi_asset import GLOBAL_ASSET
from forex_diffusion.errors import ConfigError, DataError
from forex_diffusion.evaluation.direction_rules import (
    direction_rule_signals,
    with_direction_rules,
)
from forex_diffusion.evaluation.model_card import card_from_evaluation, served_forecast
from forex_diffusion.evaluation.model_forecast import build_model_inputs, sssd_forecast
from forex_diffusion.evaluation.peer_nhits import NHITSPeer, nhits_available
from forex_diffusion.evaluation.peers import LightGBMQuantilePeer, peer_features
from forex_diffusion.evaluation.ranges import (
    TuningChoice,
    check_unseen,
    choose_tuning_range,
    evaluation_range,
    seen_ranges,
)
from forex_diffusion.evaluation.report import ReportFiles, first_table_text, write_report
from forex_diffusion.evaluation.summary import (
    ADAPTIVE,
    EvaluationSummary,
    FanChartData,
    fan_chart_data,
    raw_key_of,
    summarize_forecasts,
)
from forex_diffusion.evaluation.targets import close_at, realized_log_returns, select_decision_times
from forex_diffusion.features.unified_pipeline import required_history
from forex_diffusion.inference.sssd_inference import (
    SSSDInferenceService,
    load_sssd_inference_service,
)
from forex_diffusion.models.baselines import Baseline, GarchBaseline, build_baselines
from forex_diffusion.models.distribution import ForecastDistribution
from forex_diffusion.models.pool import online_pool
from forex_diffusion.registry.model_cards import ModelCard
from forex_diffusion.registry.repository import Registry, open_registry
from forex_diffusion.steps import Steps, silent_steps
from forex_diffusion.timeframes import UtcRange, fmt_time, timeframe_minutes

MODEL_METHOD = "sssd"  # the ``method`` of the model's rows in sssd_performance_metrics


@dataclass(frozen=True)
class Exclusions:
    """What happened to the candidate decision times (5m closes on the stride grid).

    Attributes:
        candidates: decision times in the evaluated range.
        missing_target: without the bar at t + h for at least one horizon (gap, end of data).
        missing_by_horizon: the same per horizon (a decision time can miss several).
        undefined_baseline: a baseline had too little history (e.g. the rolling window).
        insufficient_model_history: the model's feature windows were not full.
        scored: decision times every forecaster is scored on.
    """

    candidates: int
    missing_target: int
    missing_by_horizon: dict[int, int]
    undefined_baseline: int
    insufficient_model_history: int
    scored: int

    def sentence(self) -> str:
        per_h = ", ".join(f"{h} min: {n}" for h, n in self.missing_by_horizon.items())
        return (
            f"{self.scored} of {self.candidates} decision times scored; excluded: "
            f"{self.missing_target} whose target bar falls in a gap or after the data "
            f"(by horizon: {per_h}), {self.undefined_baseline} without enough history for a "
            f"baseline, {self.insufficient_model_history} without full model windows."
        )


@dataclass(frozen=True)
class EvaluationResult:
    """The outcome of :func:`evaluate`.

    Attributes:
        summary: every metric, per forecaster and horizon (also in ``metrics.json``).
        files: the written report files; ``out_dir`` their folder.
        evaluated: the evaluated window [start, end).
        tuning: where the baselines were tuned and why.
        exclusions: decision-time accounting.
        forecasts: name → (N, H) forecasts on the N scored decision times.
        targets: (N, H) realised log returns; ``last_close`` (N,) closes at t;
            ``decision_times`` (N,) the scored decision times (UTC).
        model_name, model_id, checkpoint: the evaluated model (None for baselines only).
        metric_rows: rows written to ``sssd_performance_metrics``.
        card: the model card written to the registry (None for baselines only or without
            ``record``).
    """

    summary: EvaluationSummary
    files: ReportFiles
    out_dir: Path
    evaluated: UtcRange
    tuning: TuningChoice
    exclusions: Exclusions
    forecasts: dict[str, ForecastDistribution]
    targets: np.ndarray
    last_close: np.ndarray
    model_name: str | None
    model_id: int | None
    checkpoint: Path | None
    metric_rows: int
    decision_times: pd.DatetimeIndex | None = None
    card: ModelCard | None = None

    def text(self) -> str:
        """The first table and the verdicts (what the CLI prints)."""
        return summary_text(self)


def summary_text(result: EvaluationResult | EvaluationSummary) -> str:
    """A short text summary for printing: the report's first table (CRPS, skill against the
    best baseline, 90 % coverage, directional accuracy, PT and DM p-values per horizon and
    forecaster) and one plain sentence per horizon."""
    summary = result.summary if isinstance(result, EvaluationResult) else result
    return first_table_text(summary)


# --------------------------------------------------------------------------- helpers


def _history_span(ecfg: EvaluationConfig, model_config: SSSDConfig | None) -> pd.Timedelta:
    """Calendar time of candles loaded before the evaluation start.

    Baselines: the longest window of 5m returns (GARCH, rolling) in trading time; the model:
    warm-up + lookback of its coarsest window. Trading time × 7/5 covers weekends, × 1.15 and
    four days more cover holidays and gaps.
    """
    minutes = 5 * max(ecfg.garch_window, ecfg.rolling_window)
    if model_config is not None:
        need = required_history(model_config)
        minutes = max(minutes, *(n * timeframe_minutes(tf) for tf, n in need.items()))
    return pd.Timedelta(minutes=math.ceil(minutes * 1.4 * 1.15)) + pd.Timedelta(days=4)


def _sample_week_start(times: pd.DatetimeIndex) -> pd.Timestamp:
    """Start of the fan chart's week: the Sunday 21:00 UTC (before the FX week opens) whose
    following 7 days hold the most decision times (data holes make some weeks sparse)."""
    first = times[0].normalize() - pd.Timedelta(days=7)
    sunday = first + pd.Timedelta(days=(6 - first.day_of_week) % 7, hours=21)
    starts = pd.date_range(sunday, times[-1], freq="7D")
    ns = times.as_unit("ns").asi8
    lo = np.searchsorted(ns, starts.as_unit("ns").asi8, side="left")
    hi = np.searchsorted(ns, (starts + pd.Timedelta(days=7)).as_unit("ns").asi8, side="left")
    return starts[int(np.argmax(hi - lo))] if len(starts) else times[0]


def _nearest_horizon(horizons: tuple[int, ...], wanted: int) -> int:
    return min(horizons, key=lambda h: (abs(h - wanted), h))


def _pip_size(config: SSSDConfig, asset: str) -> float:
    if config.asset.symbol.upper() == asset:
        return config.asset.pip_size
    return default_pip_size(asset)


def _load(store: CandleStore, asset: str, rng: UtcRange, what: str, timeframe: str | None) -> Any:
    try:
        return store.load(asset, start=rng.start, end=rng.end, timeframe=timeframe)
    except DataError as exc:
        raise DataError(f"{what} ({rng}): {exc}") from None


def _metric_payload(
    summary: EvaluationSummary, name: str, horizon: int, extra: dict[str, Any]
) -> dict[str, Any]:
    m = summary.get(name, horizon)
    payload = m.to_dict()
    payload.update(
        label=summary.labels.get(name, name),
        best_baseline=summary.verdict(horizon).best_baseline,
        stride=summary.stride,
        **extra,
    )
    return payload


def record_evaluation(
    registry: Registry,
    summary: EvaluationSummary,
    evaluated: UtcRange,
    model_id: int | None,
    extra: dict[str, Any],
) -> int:
    """One ``sssd_performance_metrics`` row per forecaster and horizon; returns the count.

    The model's rows carry ``model_id`` and method ``"sssd"``; a baseline's carry no model
    and its name as the method.
    """
    rows = 0
    for name in summary.forecasters:
        is_model = name == summary.model_name or name in summary.others
        method = MODEL_METHOD if name == summary.model_name else name
        if summary.model_name and name in summary.others:
            method = name.replace(summary.model_name, MODEL_METHOD)
        for h in summary.horizons:
            registry.record_metrics(
                model_id if is_model else None,
                method,
                summary.asset,
                h,
                evaluated.start.to_pydatetime(),
                evaluated.end.to_pydatetime(),
                _metric_payload(summary, name, h, extra),
                summary.get(name, h).n,
            )
            rows += 1
    return rows


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class _Subject:
    """What is evaluated: horizons, pip size, where the baselines are tuned, and the model."""

    horizons: tuple[int, ...]
    pip_size: float
    tuning: TuningChoice
    notes: tuple[str, ...]
    service: SSSDInferenceService | None = None
    model_config: SSSDConfig | None = None


def _baselines_subject(
    config: SSSDConfig, ecfg: EvaluationConfig, evaluated: UtcRange, asset: str
) -> _Subject:
    train = config.data.splits.train.utc_range("training range")
    tuning = choose_tuning_range(evaluated, train, ecfg.tuning_days, "the config's")
    horizons = tuple(int(h) for h in config.data.horizons)
    return _Subject(horizons, _pip_size(config, asset), tuning, (tuning.reason,))


def _model_subject(
    service: SSSDInferenceService,
    base_timeframe: str,
    ecfg: EvaluationConfig,
    evaluated: UtcRange,
    samples: int,
) -> _Subject:
    """The model's own horizons and splits; refuses ranges it has seen."""
    cfg = service.config_for_base(base_timeframe)
    horizons = tuple(int(h) for h in cfg.data.horizons)
    check_unseen(evaluated, cfg, max(horizons), service.model_name)
    train, val = seen_ranges(cfg)
    tuning = choose_tuning_range(evaluated, train, ecfg.tuning_days, "the model's")
    role = service.global_role()
    if role is not None and not service.asset_row:  # what evaluate fitted it on
        role += f" before {evaluated.start:%Y-%m-%d}"
    note = (
        f"Model {service.model_name} ({service.checkpoint_path}): trained on {train.label()}, "
        f"validated on {val.label()}; {f'{role}; ' if role else ''}{samples} samples per "
        f"forecast, sampler {cfg.inference.sampler}, {cfg.inference.steps} steps."
    )
    return _Subject(horizons, cfg.asset.pip_size, tuning, (note, tuning.reason), service, cfg)


def _tuned_baselines(
    store: CandleStore,
    asset: str,
    ecfg: EvaluationConfig,
    tuning: TuningChoice,
    steps: Steps = silent_steps,
) -> tuple[list[Baseline], str]:
    """The configured baselines, fitted on the tuning range's 5m bars only (one step of
    ``steps`` per baseline, noting how long each took).

    Returns the baselines and a sentence naming the data actually used: the first and last
    bar the store holds inside the tuning range, and a warning when that covers less than
    90 % of the range asked for.
    """
    baselines = build_baselines(ecfg)
    bars = _load(store, asset, tuning.range, "baseline tuning", "5m")
    used = UtcRange("tuning data", bars.index[0], bars.index[-1] + pd.Timedelta(minutes=5))
    asked_days = (tuning.range.end - tuning.range.start) / pd.Timedelta(days=1)
    used_days = (used.end - used.start) / pd.Timedelta(days=1)
    sentence = (
        f"Baseline tuning data actually used: {used.label()} ({used_days:.0f} days, "
        f"{len(bars):,} 5m bars) of the {asked_days:.0f} days asked for."
    )
    if used_days < 0.9 * asked_days:
        sentence += (
            f" WARNING: the store holds only {used_days:.0f} of the {asked_days:.0f} days; "
            "import more history to tune the baselines as configured."
        )
        logger.warning(f"{asset}: {sentence}")
    logger.info(f"{asset}: tuning {len(baselines)} baselines on {used}")
    with steps(f"tuning {len(baselines)} baselines on {used.label()}", len(baselines)) as advance:
        took: list[str] = []
        for b in baselines:
            started = time.perf_counter()
            try:
                b.fit(bars)
            except DataError as exc:
                raise DataError(
                    f"cannot tune the baselines on {tuning.range}: {exc}. Import candles for "
                    "that range, or set evaluation.tuning_days / data.splits.train to dates the "
                    "store holds."
                ) from None
            took.append(f"{b.name} {time.perf_counter() - started:.1f} s")
            advance(b.name, ", ".join(took))
    return baselines, sentence


def _baseline_forecasts(
    baselines: Sequence[Baseline],
    bars5: pd.DataFrame,
    times: pd.DatetimeIndex,
    horizons: tuple[int, ...],
    steps: Steps = silent_steps,
) -> dict[str, ForecastDistribution]:
    """Each baseline's forecasts at ``times`` (one step of ``steps`` per baseline)."""
    forecasts: dict[str, ForecastDistribution] = {}
    name = f"baseline forecasts at {len(times):,} decision times"
    with steps(name, len(baselines)) as advance:
        took: list[str] = []
        for b in baselines:
            started = time.perf_counter()
            forecasts[b.name] = b.forecast(bars5, times, horizons)
            took.append(f"{b.name} {time.perf_counter() - started:.1f} s")
            advance(b.name, ", ".join(took))
    return forecasts


def _learned_peers(
    store: CandleStore,
    asset: str,
    ecfg: EvaluationConfig,
    tuning: TuningChoice,
    baselines: Sequence[Baseline],
    baseline_forecasts: dict[str, ForecastDistribution],
    candles: pd.DataFrame,
    bars5: pd.DataFrame,
    times: pd.DatetimeIndex,
) -> tuple[list[tuple[ForecastDistribution, str]], list[str]]:
    """The learned peers of ``evaluation.peers``, each fitted on the baselines' tuning range
    only (every training target inside it): (forecast, label) rows and notes."""
    base = _load(store, asset, tuning.range, "learned-peer training", None)
    train5 = resample_ohlc(base, "5m")
    rows: list[tuple[ForecastDistribution, str]] = []
    notes: list[str] = []
    if "lightgbm" in ecfg.peers:
        fc, note = _lightgbm_forecast(
            base, train5, ecfg, tuning, baselines, baseline_forecasts, candles, bars5, times
        )
        notes.append(note)
        if fc is not None:
            rows.append((fc, "LightGBM quantile peer"))
    if "nhits" in ecfg.peers:
        horizons = next(iter(baseline_forecasts.values())).horizons
        fc, note = _nhits_forecast(train5, ecfg, tuning, bars5, times, horizons)
        notes.append(note)
        if fc is not None:
            rows.append((fc, "NHITS Student-t peer"))
    return rows, notes


def _lightgbm_forecast(
    base: pd.DataFrame,
    train5: pd.DataFrame,
    ecfg: EvaluationConfig,
    tuning: TuningChoice,
    baselines: Sequence[Baseline],
    baseline_forecasts: dict[str, ForecastDistribution],
    candles: pd.DataFrame,
    bars5: pd.DataFrame,
    times: pd.DatetimeIndex,
) -> tuple[ForecastDistribution | None, str]:
    """The LightGBM quantile peer, fitted on the tuning range's candles ``base`` (5m bars
    ``train5``) and scaled by the best-informed baseline's σ forecast; None and a note when it
    cannot be."""
    scaler = next((b for b in baselines if b.name == "ewma_seasonal"), baselines[0])
    horizons = baseline_forecasts[scaler.name].horizons
    last = tuning.range.end - pd.Timedelta(minutes=max(horizons))
    train_times = select_decision_times(train5, tuning.range.start, last, ecfg.stride)
    y = realized_log_returns(train5, train_times, horizons)
    x = peer_features(base, train5, train_times)
    scale = scaler.forecast(train5, train_times, horizons).std()
    ok = np.isfinite(x.to_numpy()).all(axis=1) & np.isfinite(scale).all(axis=1)
    peer = LightGBMQuantilePeer(seed=0)
    try:
        peer.fit(
            x[ok],
            {h: y[ok, j] for j, h in enumerate(horizons)},
            {h: scale[ok, j] for j, h in enumerate(horizons)},
        )
    except ValueError as exc:
        return None, f"Learned peer (LightGBM) skipped: {exc}."
    x_eval = peer_features(candles, bars5, times)
    s_eval = baseline_forecasts[scaler.name].std()  # its forecasts at the evaluated times
    valid = np.isfinite(x_eval.to_numpy()).all(axis=1) & np.isfinite(s_eval).all(axis=1)
    samples = np.full((len(times), len(horizons), ecfg.peer_samples), np.nan)
    if valid.any():
        for j, h in enumerate(horizons):
            samples[valid, j] = peer.predict_samples(
                x_eval[valid], h, s_eval[valid, j], ecfg.peer_samples
            )
    note = (
        f"Learned peer: LightGBM quantile regression ({len(peer.levels)} levels per horizon) on "
        f"{int(ok.sum())} decision times of {tuning.range.label()}, targets scaled by "
        f"{scaler.label}'s σ forecast."
    )
    return ForecastDistribution.from_samples("lightgbm", times, horizons, samples), note


def _nhits_skip_note(horizons: tuple[int, ...], installed: bool) -> str | None:
    """Why the NHITS peer cannot run (the report's note), or None when it can."""
    if not installed:
        return (
            "Learned peer (NHITS) skipped: neuralforecast is not installed "
            "(pip install 'forex-diffusion[peers]')."
        )
    if any(h % 5 for h in horizons):
        return "Learned peer (NHITS) skipped: a horizon is not a multiple of 5 minutes."
    return None


def _nhits_forecast(
    train5: pd.DataFrame,
    ecfg: EvaluationConfig,
    tuning: TuningChoice,
    bars5: pd.DataFrame,
    times: pd.DatetimeIndex,
    horizons: tuple[int, ...],
) -> tuple[ForecastDistribution | None, str]:
    """The NHITS Student-t peer (see :mod:`forex_diffusion.evaluation.peer_nhits`), fitted on
    the tuning range's 5m bars ``train5``; None and a note saying why when it cannot run."""
    skipped = _nhits_skip_note(horizons, nhits_available())
    if skipped is not None:
        return None, skipped
    peer = NHITSPeer(steps=max(horizons) // 5, max_steps=ecfg.nhits_max_steps, seed=0)
    started = time.perf_counter()
    try:
        peer.fit(train5)
    except ValueError as exc:
        return None, f"Learned peer (NHITS) skipped: {exc}."
    samples = peer.predict_samples(bars5, times, horizons, ecfg.peer_samples)
    note = (
        f"Learned peer: NeuralForecast NHITS, Student-t likelihood on the 5m log close "
        f"({peer.steps} steps ahead, {peer.input_size} bars of input, {peer.max_steps} training "
        f"steps on CPU in {time.perf_counter() - started:.0f} s) on {len(train5):,} 5m bars of "
        f"{tuning.range.label()}; each horizon is the step-h/5 marginal."
    )
    return ForecastDistribution.from_samples("nhits", times, horizons, samples), note


def _add_pool(
    forecasts: dict[str, ForecastDistribution],
    labels: dict[str, str],
    variants: list[str],
    model_key: str | None,
    targets: np.ndarray,
    ecfg: EvaluationConfig,
) -> list[str]:
    """Add the online CRPS pool of the model with seasonal EWMA and GARCH as a row."""
    if not ecfg.pool or model_key is None or model_key not in forecasts:
        return []
    parts = [forecasts[model_key]]
    parts += [forecasts[b] for b in ("ewma_seasonal", "garch") if b in forecasts]
    if len(parts) < 2:
        return []
    forecasts["pool"] = online_pool(parts, targets)
    names = " + ".join(labels.get(p.name, p.name) for p in parts)
    labels["pool"] = "CRPS pool"
    variants.append("pool")
    return [
        f"CRPS pool: {names}, weights refitted each week on the outcomes known by then "
        "(equal weights until 20 are known)."
    ]


def _add_adaptive(
    forecasts: dict[str, ForecastDistribution],
    labels: dict[str, str],
    variants: list[str],
    model_key: str | None,
    targets: np.ndarray,
    acfg: AdaptiveConformalConfig,
    ecfg: EvaluationConfig,
) -> list[str]:
    """Add the model's (calibrated) forecasts under adaptive conformal levels as the row
    ``adaptive``: each decision time issued with the levels that the outcomes known by then
    (t + h) have set, from the nominal levels at the range's first decision time."""
    if not ecfg.adaptive_conformal or model_key is None or model_key not in forecasts:
        return []
    fc = forecasts[model_key]
    samples = _samples_of(fc)
    times_ns = fc.times.as_unit("ns").asi8
    aci = AdaptiveConformal(tuple(acfg.coverages), acfg.gamma)
    out = np.empty_like(samples)
    for j, h in enumerate(fc.horizons):
        out[:, j], _ = adaptive_conformal_samples(
            samples[:, j], targets[:, j], times_ns, h, aci, acfg.by_session, acfg.by_phase
        )
    forecasts[ADAPTIVE] = ForecastDistribution.from_samples(ADAPTIVE, fc.times, fc.horizons, out)
    labels[ADAPTIVE] = f"{labels.get(model_key, model_key)} + adaptive conformal"
    variants.append(ADAPTIVE)
    levels = ", ".join(f"{c:.0%}" for c in acfg.coverages)
    return [
        f"Adaptive conformal: the calibrated model's central {levels} intervals at levels "
        f"updated online (Gibbs & Candès 2021, γ = {acfg.gamma:g}"
        f"{_aci_cells(acfg.by_session, acfg.by_phase)}) by the outcomes known at "
        "each decision time, starting from the nominal levels at the first; the distribution "
        "between those intervals follows the model."
    ]


def _aci_cells(by_session: bool, by_phase: bool) -> str:
    """How the report names the adaptive levels' cells."""
    cells = [
        n
        for n, on in (("trading session", by_session), ("5-minute slot of the hour", by_phase))
        if on
    ]
    return f", per {' and '.join(cells)}" if cells else ""


def _add_served(
    forecasts: dict[str, ForecastDistribution],
    labels: dict[str, str],
    variants: list[str],
    subject: _Subject,
    baselines: Sequence[Baseline],
    targets: np.ndarray,
    config: SSSDConfig,
    ecfg: EvaluationConfig,
    registry: Registry | None,
    evaluated: UtcRange,
) -> list[str]:
    """Add what the fallback policy serves as the row ``served`` (see ``model_card``)."""
    service = subject.service
    if not ecfg.served or service is None or service.model_name not in forecasts:
        return []
    model_id = service.model_id
    prior = (
        registry.model_card(model_id, service.asset)
        if registry is not None and model_id is not None
        else None
    )
    row = served_forecast(
        forecasts,
        service.model_name,
        baselines,
        targets,
        config.inference.fallback,
        ecfg,
        prior_card=prior,
        model_id=model_id or 0,
        weights_digest=service.model_digest,
        evaluated=evaluated,
    )
    forecasts[row.forecast.name] = row.forecast
    labels[row.forecast.name] = row.label
    variants.append(row.forecast.name)
    return [row.note]


def _registered_config(service: SSSDInferenceService) -> SSSDConfig:
    """The config the service's model is registered under: a global model's under
    ``GLOBAL_ASSET`` (the service's config is that of the asset it serves)."""
    if service.config.model.assets:
        return service.config.with_overrides([f"asset.symbol={GLOBAL_ASSET}"])
    return service.config


def _range_name(model_config: SSSDConfig, evaluated: UtcRange) -> str:
    """ "test range" when the evaluated range lies in the model's test split."""
    test = model_config.data.splits.test.utc_range("test range")
    inside = test.start <= evaluated.start and evaluated.end <= test.end
    return "test range" if inside else "evaluation range"


def _baseline_diagnostics(baselines: Sequence[Baseline]) -> tuple[dict[str, Any], list[str]]:
    """Counts of GARCH refits that failed or did not converge, for metrics.json and the notes."""
    data: dict[str, Any] = {}
    notes: list[str] = []
    for b in baselines:
        if isinstance(b, GarchBaseline):
            data["garch_refits"] = len(b.fits_) + b.refit_failures_
            data["garch_refit_failures"] = b.refit_failures_
            notes.append(
                f"GARCH: {b.refit_failures_} of {data['garch_refits']} rolling refits failed or "
                "did not converge; each kept the previous fit."
            )
    return data, notes


def _model_forecast(
    subject: _Subject,
    candles: pd.DataFrame,
    times: pd.DatetimeIndex,
    wanted: np.ndarray,
    samples: int,
    ecfg: EvaluationConfig,
    seed: int,
    show_progress: bool,
) -> tuple[ForecastDistribution | None, np.ndarray]:
    """The model's forecasts at ``times[wanted]``.

    Returns:
        (forecast over all N ``times`` with NaN rows where none was made, or None when no
        decision time has full windows; (N,) bool: full model windows, True where not wanted).
    """
    assert subject.service is not None and subject.model_config is not None
    service = subject.service
    name = service.model_name
    inputs = build_model_inputs(candles, subject.model_config, service, times[wanted])
    has_history = np.ones(len(times), dtype=bool)
    has_history[np.flatnonzero(wanted)] = inputs.has_history
    if inputs.dataset is None:
        return None, has_history
    with tqdm(
        total=len(inputs.dataset), desc=name, unit="forecast", disable=not show_progress
    ) as bar:
        fc = sssd_forecast(
            service,
            inputs.dataset,
            num_samples=samples,
            batch_size=ecfg.batch_size,
            seed=seed,
            name=name,
            on_batch=bar.update,
        )
    full = np.full((len(times), len(subject.horizons), samples), np.nan)
    full[wanted & has_history] = fc.samples
    return ForecastDistribution.from_samples(name, times, subject.horizons, full), has_history


# --------------------------------------------------------------------------- evaluate


def evaluate(
    config: SSSDConfig,
    asset: str,
    start: Any,
    end: Any,
    model_name: str | None = None,
    baselines_only: bool = False,
    stride: int | None = None,
    num_samples: int | None = None,
    out_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    *,
    device: str | None = None,
    registry: Registry | None = None,
    progress: bool | None = None,
    record: bool = True,
    steps: Steps = silent_steps,
) -> EvaluationResult:
    """Walk-forward evaluation of ``asset``'s model (or of the baselines alone) on [start, end].

    Args:
        config: the configuration (paths, ``evaluation`` section; for baselines only also
            ``data.horizons`` and ``data.splits.train``; with a model, the horizons, the
            splits and the features are the model's own, from its checkpoint).
        asset: symbol in the candle store.
        start, end: the evaluated range (UTC); an ``end`` without time of day is inclusive.
        model_name: the model to evaluate; None = the asset's best checkpoint.
        baselines_only: evaluate the baselines only (no model is loaded).
        stride: a decision time every ``stride`` 5m bars (default ``evaluation.stride``).
        num_samples: model samples per forecast (default ``inference.num_samples``).
        out_dir: report folder (default ``<paths.reports_dir>/<ASSET>_<start>_<end>_<model>``).
        data_dir: candle store root (default ``paths.data_dir``).
        device: model device (default ``inference.device``).
        registry: where metric rows go (default ``open_registry(config)``).
        progress: show the model's progress bar (default: when stderr is a terminal).
        record: write the rows to ``sssd_performance_metrics`` (and register the model if
            the registry does not know it yet).
        steps: reports the baselines' tuning and forecasting, one step per baseline
            (default: nowhere).

    Raises:
        ConfigError: a bad range, --model with --baselines-only, or a range that overlaps the
            model's training or validation range (both named).
        NotFoundError: unknown asset or model.
        DataError: no candles for the tuning or evaluated range, or nothing left to score.
    """
    asset = asset.upper()
    if baselines_only and model_name is not None:
        raise ConfigError(
            f"--model {model_name} and --baselines-only exclude each other; pass one of them"
        )
    evaluated = evaluation_range(start, end)
    ecfg = config.evaluation
    if stride is not None:
        if stride < 1:
            raise ConfigError(f"stride must be >= 1 (5m bars between decision times), got {stride}")
        ecfg = ecfg.model_copy(update={"stride": int(stride)})
    samples = int(num_samples if num_samples is not None else config.inference.num_samples)
    if not baselines_only and not 2 <= samples <= 10_000:
        raise ConfigError(f"samples must be in [2, 10000], got {samples}")
    show_progress = sys.stderr.isatty() if progress is None else progress

    with ExitStack() as stack:
        store = stack.enter_context(CandleStore(resolve_data_dir(config, data_dir)))
        base_tf = store.base_timeframe(asset)
        if registry is None and (record or not baselines_only):
            registry = open_registry(config)
            stack.callback(registry.close)
        if baselines_only:
            subject = _baselines_subject(config, ecfg, evaluated, asset)
        else:
            loaded = load_sssd_inference_service(
                asset,
                checkpoint_dir=config.paths.checkpoint_dir,
                model_name=model_name,
                device=device or config.inference.device,
                config=config,
                registry=registry,
                history_end=evaluated.start,
            )
            subject = _model_subject(loaded, base_tf, ecfg, evaluated, samples)
        horizons = subject.horizons
        baselines, tuning_used = _tuned_baselines(store, asset, ecfg, subject.tuning, steps)

        # candles of the evaluated range, with the history the forecasters need before it
        span = UtcRange(
            "evaluated range with history",
            evaluated.start - _history_span(ecfg, subject.model_config),
            evaluated.end + pd.Timedelta(minutes=max(horizons)),
        )
        candles = _load(store, asset, span, "evaluation candles", None)
        bars5 = resample_ohlc(candles, "5m", base_timeframe=base_tf)
        times = select_decision_times(bars5, evaluated.start, evaluated.end, ecfg.stride)
        if len(times) == 0:
            raise DataError(
                f"{asset}: no 5m bar closes in {evaluated} on the stride-{ecfg.stride} grid; "
                "the store has no candles there (see `forex-diffusion data info`)"
            )
        targets = realized_log_returns(bars5, times, horizons)
        last_close = close_at(bars5, times)
        has_targets = np.isfinite(targets).all(axis=1) & np.isfinite(last_close)

        forecasts = _baseline_forecasts(baselines, bars5, times, horizons, steps)
        labels = {b.name: b.label for b in baselines}
        variants: list[str] = []  # rows scored like the model
        peers: list[str] = []  # of those, the learned peers, which compete for best baseline
        peer_notes: list[str] = []
        if ecfg.learned_peer:
            peer_rows, peer_notes = _learned_peers(
                store, asset, ecfg, subject.tuning, baselines, forecasts, candles, bars5, times
            )
            for peer_fc, label in peer_rows:
                forecasts[peer_fc.name] = peer_fc
                labels[peer_fc.name] = label
                variants.append(peer_fc.name)
                peers.append(peer_fc.name)
        baseline_ok = np.logical_and.reduce([f.valid().all(axis=1) for f in forecasts.values()])
        keep = has_targets & baseline_ok
        model_ok = np.ones(len(times), dtype=bool)
        model_key: str | None = None
        rules = direction_rule_signals(bars5, times)
        if subject.service is not None:
            model_key = subject.service.model_name
            labels[model_key] = model_key
            model_fc, model_ok = _model_forecast(
                subject, candles, times, keep, samples, ecfg, config.seed, show_progress
            )
            if model_fc is not None:
                forecasts[model_key] = model_fc
                if subject.service.uses_calibration(None):
                    raw_key = raw_key_of(model_key)
                    forecasts[raw_key] = model_fc.renamed(raw_key)
                    forecasts[model_key] = ForecastDistribution.from_samples(
                        model_key,
                        model_fc.times,
                        model_fc.horizons,
                        subject.service.recalibrate(
                            _samples_of(model_fc), model_fc.times.as_unit("ns").asi8
                        ),
                    )
                    labels[model_key] = f"{model_key} (calibrated)"
                    labels[raw_key] = raw_key
                    variants.append(raw_key)
        del candles, bars5
        exclusions = Exclusions(
            candidates=len(times),
            missing_target=int((~has_targets).sum()),
            missing_by_horizon={
                h: int((~np.isfinite(targets[:, j])).sum()) for j, h in enumerate(horizons)
            },
            undefined_baseline=int((has_targets & ~baseline_ok).sum()),
            insufficient_model_history=int((keep & ~model_ok).sum()),
            scored=int((keep & model_ok).sum()),
        )
        if exclusions.scored == 0:
            raise DataError(f"{asset}: nothing to score in {evaluated}: {exclusions.sentence()}")
        keep &= model_ok
        forecasts = {k: f.select(keep) for k, f in forecasts.items()}
        targets, last_close, scored_times = targets[keep], last_close[keep], times[keep]
        pool_note = _add_pool(forecasts, labels, variants, model_key, targets, ecfg)
        pool_note += _add_adaptive(
            forecasts,
            labels,
            variants,
            model_key,
            targets,
            config.inference.adaptive_conformal,
            ecfg,
        )
        pool_note += _add_served(
            forecasts,
            labels,
            variants,
            subject,
            baselines,
            targets,
            config,
            ecfg,
            registry,
            evaluated,
        )
        diagnostics, diag_notes = _baseline_diagnostics(baselines)
        diagnostics["baseline_tuning"] = tuning_used
        rules = {k: v[keep] for k, v in rules.items()}

        summary = summarize_forecasts(
            asset=asset,
            forecasts=forecasts,
            baselines=[b.name for b in baselines],
            targets=targets,
            last_close=last_close,
            pip_size=subject.pip_size,
            cfg=ecfg,
            model_name=model_key,
            labels=labels,
            start=fmt_time(evaluated.start),
            end=fmt_time(evaluated.end, end=True),
            notes=[
                *subject.notes,
                tuning_used,
                exclusions.sentence(),
                *diag_notes,
                *peer_notes,
                *pool_note,
            ],
            diagnostics=diagnostics,
            others=variants,
            peers=peers,
        )
        summary = with_direction_rules(summary, rules, targets)
        out = Path(out_dir) if out_dir else _default_out_dir(config, asset, evaluated, model_key)
        files = write_report(
            out, summary, _fan_chart(summary, forecasts, targets, last_close, ecfg)
        )
        logger.info(f"{asset}: report written to {files.report}")

        service = subject.service
        model_id = service.model_id if service is not None else None
        rows = 0
        card = None
        if record and registry is not None:
            if service is not None and model_id is None:  # a checkpoint the registry lacks
                model_id = registry.register_from_config(_registered_config(service)).id
            extra: dict[str, Any] = {"tuning": subject.tuning.source, "report": str(files.report)}
            if service is not None:
                extra["num_samples"] = samples
            rows = record_evaluation(registry, summary, evaluated, model_id, extra)
            if service is not None and model_id is not None and model_key is not None:
                assert subject.model_config is not None
                card = registry.save_model_card(
                    card_from_evaluation(
                        summary,
                        forecasts,
                        targets,
                        baselines,
                        model_id=model_id,
                        weights_digest=service.model_digest,
                        evaluated=evaluated,
                        range_name=_range_name(subject.model_config, evaluated),
                        report=str(files.report),
                    )
                )
        return EvaluationResult(
            summary=summary,
            files=files,
            out_dir=out,
            evaluated=evaluated,
            tuning=subject.tuning,
            exclusions=exclusions,
            forecasts=forecasts,
            targets=targets,
            last_close=last_close,
            model_name=model_key,
            model_id=model_id,
            checkpoint=service.checkpoint_path if service is not None else None,
            metric_rows=rows,
            decision_times=scored_times,
            card=card,
        )


def _samples_of(fc: ForecastDistribution) -> np.ndarray:
    if fc.samples is None:
        raise TypeError(f"forecast {fc.name!r} is not sample-based")
    return fc.samples


def _default_out_dir(
    config: SSSDConfig, asset: str, evaluated: UtcRange, model: str | None
) -> Path:
    tag = model or "baselines"
    start = fmt_time(evaluated.start).replace(" ", "T").replace(":", "")
    end = fmt_time(evaluated.end, end=True).replace(" ", "T").replace(":", "")
    return Path(config.paths.reports_dir) / f"{asset}_{start}_{end}_{tag}"


def _fan_chart(
    summary: EvaluationSummary,
    forecasts: dict[str, ForecastDistribution],
    targets: np.ndarray,
    last_close: np.ndarray,
    ecfg: EvaluationConfig,
) -> FanChartData:
    """The model's (else the best baseline's) bands over a sample week."""
    h = _nearest_horizon(summary.horizons, ecfg.fan_chart_horizon)
    name = summary.model_name or summary.verdict(h).best_baseline
    f = forecasts[name]
    return fan_chart_data(
        f, h, last_close, targets, levels=(0.5, 0.9), start=_sample_week_start(f.times), days=7.0
    )
