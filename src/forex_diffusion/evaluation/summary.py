"""Score a set of forecasters on the same decision times and summarise (SPEC §7).

:func:`summarize_forecasts` takes the forecasts of the baselines (and optionally the model)
for N decision times × H horizons plus the realised log returns, and returns a typed,
JSON-serialisable :class:`EvaluationSummary`. All forecasters are scored per horizon on the
same pairs: those where the target and every forecast exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import EvaluationConfig
from forex_diffusion.evaluation import metrics as M
from forex_diffusion.evaluation.conditional_coverage import (
    CoverageCell,
    CoverageConditioning,
    conditional_coverage,
    conditioning,
    coverage_groups,
    volatility_reference,
)
from forex_diffusion.evaluation.stat_tests import diebold_mariano, overlap_lag, pesaran_timmermann
from forex_diffusion.features.targets import log_return_to_pips, log_return_to_price
from forex_diffusion.models.distribution import ForecastDistribution


@dataclass(frozen=True)
class DMSummary:
    """Diebold–Mariano on CRPS: this forecaster against the best baseline (d = this − best)."""

    against: str
    statistic: float
    p_value: float
    mean_differential: float
    lag: int
    hln: bool


@dataclass(frozen=True)
class ForecasterMetrics:
    """All metrics of one forecaster at one horizon (CRPS etc. in log-return units).

    Attributes:
        n: scored pairs (common to all forecasters at this horizon).
        crps: mean CRPS of the log return.
        skill: CRPS skill 1 − CRPS/CRPS_ref against each baseline, by baseline name.
        skill_vs_best: skill against the best baseline (the lowest CRPS) at this horizon.
        wql: weighted quantile loss over the quantile levels.
        coverage: observed coverage of each central interval, by level as a string ("0.9").
        quantile_hit_rates: observed frequency of y ≤ Q_q for each quantile level.
        pit_histogram: PIT counts in equal bins of [0, 1]; pit_pvalue: chi-square p-value.
        mae_pips, rmse_pips: errors of the median price change in pips.
        directional_accuracy, n_directional: sign hit rate of the median and pairs counted.
        pt_statistic, pt_pvalue: Pesaran–Timmermann (NaN without a direction, e.g. a zero median).
        dm: DM test against the best baseline (None for the best baseline itself).
        crps_by_hour: mean CRPS per UTC hour of the decision time (24 entries, NaN if none).
        coverage_by_cell: coverage of each central interval in each volatility tercile and
            trading session (see ``conditional_coverage``).
    """

    forecaster: str
    horizon: int
    n: int
    crps: float
    skill: dict[str, float]
    skill_vs_best: float
    wql: float
    coverage: dict[str, float]
    quantile_hit_rates: list[float]
    pit_histogram: list[int]
    pit_pvalue: float
    mae_pips: float
    rmse_pips: float
    directional_accuracy: float
    n_directional: int
    pt_statistic: float
    pt_pvalue: float
    dm: DMSummary | None
    crps_by_hour: list[float]
    coverage_by_cell: tuple[CoverageCell, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (NaN/inf become None)."""
        return dict(_json_clean(asdict(self)))


@dataclass(frozen=True)
class HorizonVerdict:
    """The plain-language outcome at one horizon."""

    horizon: int
    best_baseline: str
    model_skill: float | None
    dm_pvalue: float | None
    outcome: str  # "beats" | "loses" | "not significantly different" | "no model"
    sentence: str


ADAPTIVE = "adaptive"  # the row of the calibrated model under adaptive conformal levels


def raw_key_of(model_key: str) -> str:
    """The row of the model's samples before its calibration map."""
    return f"{model_key} (raw)"


@dataclass(frozen=True)
class EvaluationSummary:
    """Everything the report shows; ``metrics`` holds one entry per forecaster × horizon."""

    asset: str
    start: str
    end: str
    stride: int
    n_decisions: int
    horizons: tuple[int, ...]
    pip_size: float
    model_name: str | None
    baselines: tuple[str, ...]
    labels: dict[str, str]
    coverage_levels: tuple[float, ...]
    quantile_levels: tuple[float, ...]
    significance: float
    metrics: tuple[ForecasterMetrics, ...]
    verdicts: tuple[HorizonVerdict, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    others: tuple[str, ...] = ()
    coverage_conditioning: CoverageConditioning | None = None

    @property
    def forecasters(self) -> tuple[str, ...]:
        """The model first (if any), then its variants (e.g. raw beside calibrated), then the
        baselines."""
        return ((self.model_name,) if self.model_name else ()) + self.others + self.baselines

    def figure_rows(self, horizon: int) -> tuple[str, ...]:
        """The rows a per-horizon figure draws: the model, its raw and adaptive-conformal rows
        and the best baseline at ``horizon`` (every row when there is no model). The tables and
        ``metrics.json`` keep every row; a figure of all of them is unreadable."""
        if not self.model_name:
            return self.forecasters
        wanted = (
            self.model_name,
            raw_key_of(self.model_name),
            ADAPTIVE,
            self.verdict(horizon).best_baseline,
        )
        return tuple(name for name in wanted if name in self.forecasters)

    def get(self, forecaster: str, horizon: int) -> ForecasterMetrics:
        for m in self.metrics:
            if m.forecaster == forecaster and m.horizon == horizon:
                return m
        raise KeyError(f"no metrics for forecaster {forecaster!r} at horizon {horizon}")

    def verdict(self, horizon: int) -> HorizonVerdict:
        for v in self.verdicts:
            if v.horizon == horizon:
                return v
        raise KeyError(f"no verdict for horizon {horizon}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (NaN/inf become None)."""
        data = asdict(self)
        data["forecasters"] = list(self.forecasters)
        return _json_clean(data)


def _json_clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _hourly_mean(values: np.ndarray, hours: np.ndarray) -> list[float]:
    sums = np.bincount(hours, weights=values, minlength=24)
    counts = np.bincount(hours, minlength=24)
    return [float(s / c) if c else math.nan for s, c in zip(sums, counts, strict=True)]


def _verdict(
    horizon: int,
    model: str | None,
    best: str,
    labels: Mapping[str, str],
    skill: float | None,
    dm_p: float | None,
    alpha: float,
    best_crps: float,
) -> HorizonVerdict:
    best_label = labels.get(best, best)
    if model is None:
        sentence = (
            f"{horizon} min: no model was evaluated (baselines only); the best baseline is "
            f"{best_label} (CRPS {best_crps * 1e4:.3f} bp)."
        )
        return HorizonVerdict(horizon, best, None, None, "no model", sentence)
    name = labels.get(model, model)
    assert skill is not None
    p_text = f"DM p = {dm_p:.3g}" if dm_p is not None and math.isfinite(dm_p) else "DM p n/a"
    significant = dm_p is not None and math.isfinite(dm_p) and dm_p < alpha
    if not math.isfinite(skill):
        outcome, sentence = (
            "not significantly different",
            f"{horizon} min: {name} could not be compared with {best_label} (no common pairs).",
        )
    elif significant and skill > 0:
        outcome = "beats"
        sentence = (
            f"{horizon} min: {name} BEATS the best baseline, {best_label}: CRPS "
            f"{abs(skill) * 100:.1f} % lower ({p_text}, significant at {alpha:g})."
        )
    elif significant and skill < 0:
        outcome = "loses"
        sentence = (
            f"{horizon} min: {name} LOSES to the best baseline, {best_label}: CRPS "
            f"{abs(skill) * 100:.1f} % higher ({p_text}, significant at {alpha:g})."
        )
    else:
        outcome = "not significantly different"
        direction = "lower" if skill > 0 else "higher"
        sentence = (
            f"{horizon} min: {name} does not differ significantly from the best baseline, "
            f"{best_label}: its CRPS is {abs(skill) * 100:.1f} % {direction} ({p_text})."
        )
    return HorizonVerdict(horizon, best, skill, dm_p, outcome, sentence)


def summarize_forecasts(
    *,
    asset: str,
    forecasts: Mapping[str, ForecastDistribution],
    baselines: Sequence[str],
    targets: np.ndarray,
    last_close: np.ndarray,
    pip_size: float,
    cfg: EvaluationConfig,
    model_name: str | None = None,
    labels: Mapping[str, str] | None = None,
    start: str | None = None,
    end: str | None = None,
    notes: Sequence[str] = (),
    diagnostics: Mapping[str, Any] | None = None,
    others: Sequence[str] = (),
    peers: Sequence[str] = (),
) -> EvaluationSummary:
    """Score every forecaster on the common pairs of each horizon.

    Args:
        asset: symbol shown in the report.
        forecasts: name → ForecastDistribution, all with the same decision times and horizons.
        baselines: names of the baselines among ``forecasts`` (at least one).
        targets: (N, H) realised log returns (NaN where missing).
        last_close: (N,) close at each decision time (for pips).
        pip_size: price units per pip.
        cfg: evaluation settings (levels, stride for the DM lag, significance, HLN).
        model_name: the model's name among ``forecasts``, or None for baselines only.
        labels: display names by forecaster name.
        start, end: the evaluated range, for the report.
        notes: extra lines for the report.
        diagnostics: extra facts for metrics.json (e.g. GARCH refit failures); the DM
            variance kernel used is always added.
        others: further forecasters scored like the model (its raw variant beside the
            calibrated one, a learned peer, a pool).
        peers: those of ``others`` that compete with the baselines for "best baseline" (the
            learned peers: what a quant would otherwise pick), so the verdicts compare the
            model with the best of both.
    """
    if not baselines:
        raise ValueError("at least one baseline is needed")
    names = ([model_name] if model_name else []) + list(others) + list(baselines)
    missing = [n for n in names if n not in forecasts]
    if missing:
        raise ValueError(f"no forecasts for {missing}; have {sorted(forecasts)}")
    ref = forecasts[names[0]]
    y = np.asarray(targets, dtype=np.float64)
    if y.shape != ref.shape:
        raise ValueError(f"targets {y.shape} must have shape {ref.shape}")
    for n in names:
        f = forecasts[n]
        if f.shape != ref.shape or not f.times.equals(ref.times) or f.horizons != ref.horizons:
            raise ValueError(f"forecast {n!r} does not share the decision times and horizons")
    labels = {n: n for n in names} | dict(labels or {})
    cov_levels = tuple(cfg.coverage_levels)
    q_levels = np.asarray(cfg.quantile_levels, dtype=np.float64)
    hours = ref.times.hour.to_numpy()
    minutes = ref.times.minute.to_numpy()
    close = np.asarray(last_close, dtype=np.float64)
    actual_pips = log_return_to_pips(y, close[:, None], pip_size)

    common = np.isfinite(y) & np.isfinite(close)[:, None]
    for n in names:
        common &= forecasts[n].valid()

    crps = {n: np.where(common, forecasts[n].crps(y), np.nan) for n in names}
    # every horizon at once, per forecaster (a quantile of samples sorts all N x H x S of them)
    scored_y = np.where(common, y, np.nan)
    quantiles = {n: forecasts[n].quantile(q_levels) for n in names}  # (Q, N, H)
    medians = {n: forecasts[n].median() for n in names}  # (N, H)
    intervals = {n: {lv: forecasts[n].interval(lv) for lv in cov_levels} for n in names}
    pits = {n: forecasts[n].cdf(scored_y) for n in names}  # (N, H), NaN off the scored pairs
    sigma_source = volatility_reference(baselines)
    sigma = np.where(common, forecasts[sigma_source].std(), np.nan)  # (N, H), known at t
    cuts: dict[int, tuple[float, float]] = {}
    all_metrics: list[ForecasterMetrics] = []
    verdicts: list[HorizonVerdict] = []
    for j, h in enumerate(ref.horizons):
        ok = common[:, j]
        mean_crps = {n: float(crps[n][ok, j].mean()) if ok.any() else math.nan for n in names}
        contenders = [*baselines, *(p for p in peers if p in others)]
        finite = [b for b in contenders if math.isfinite(mean_crps[b])]
        best = min(finite, key=lambda b: mean_crps[b]) if finite else baselines[0]
        lag = overlap_lag(h, cfg.stride)
        groups = coverage_groups(sigma[:, j], hours, minutes)
        cuts[h] = groups.cuts
        for n in names:
            c = crps[n][:, j]
            yj = scored_y[:, j]
            quants = quantiles[n][:, :, j]
            median = medians[n][:, j]
            coverage = {
                f"{level:g}": M.interval_coverage(lo[:, j], hi[:, j], yj)
                for level, (lo, hi) in intervals[n].items()
            }
            pit_counts = M.pit_histogram(pits[n][:, j], cfg.pit_bins)
            median_pips = log_return_to_pips(median, close, pip_size)
            da = M.directional_accuracy(np.where(ok, median, np.nan), yj)
            pt = pesaran_timmermann(np.where(ok, median, np.nan), yj)
            dm = None
            if n != best:
                res = diebold_mariano(
                    c[ok],
                    crps[best][ok, j],
                    lag=lag,
                    hln=cfg.dm_small_sample_correction,
                    kernel=cfg.dm_kernel,
                )
                dm = DMSummary(
                    best, res.statistic, res.p_value, res.mean_differential, lag, res.hln
                )
            all_metrics.append(
                ForecasterMetrics(
                    forecaster=n,
                    horizon=h,
                    n=int(ok.sum()),
                    crps=mean_crps[n],
                    skill={b: M.crps_skill(c[ok], crps[b][ok, j]) for b in baselines},
                    skill_vs_best=M.crps_skill(c[ok], crps[best][ok, j]),
                    wql=M.weighted_quantile_loss(quants, yj, q_levels),
                    coverage=coverage,
                    quantile_hit_rates=[float(v) for v in M.quantile_hit_rates(quants, yj)],
                    pit_histogram=[int(v) for v in pit_counts],
                    pit_pvalue=M.pit_uniformity_pvalue(pit_counts),
                    mae_pips=M.mae(np.where(ok, median_pips, np.nan), actual_pips[:, j]),
                    rmse_pips=M.rmse(np.where(ok, median_pips, np.nan), actual_pips[:, j]),
                    directional_accuracy=da.accuracy,
                    n_directional=da.n,
                    pt_statistic=pt.statistic,
                    pt_pvalue=pt.p_value,
                    dm=dm,
                    crps_by_hour=_hourly_mean(c[ok], hours[ok]),
                    coverage_by_cell=conditional_coverage(
                        groups,
                        {lv: (lo[:, j], hi[:, j]) for lv, (lo, hi) in intervals[n].items()},
                        yj,
                    ),
                )
            )
        model_skill = dm_p = None
        if model_name:
            m = all_metrics[-len(names)]
            model_skill = m.skill_vs_best
            dm_p = m.dm.p_value if m.dm else None
        verdicts.append(
            _verdict(
                h, model_name, best, labels, model_skill, dm_p, cfg.significance, mean_crps[best]
            )
        )
    times = ref.times
    return EvaluationSummary(
        asset=asset,
        start=start or (str(times[0]) if len(times) else ""),
        end=end or (str(times[-1]) if len(times) else ""),
        stride=cfg.stride,
        n_decisions=len(times),
        horizons=ref.horizons,
        pip_size=pip_size,
        model_name=model_name,
        baselines=tuple(baselines),
        labels=dict(labels),
        coverage_levels=cov_levels,
        quantile_levels=tuple(float(q) for q in q_levels),
        significance=cfg.significance,
        metrics=tuple(all_metrics),
        verdicts=tuple(verdicts),
        notes=(
            *notes,
            f"Diebold–Mariano: long-run variance kernel '{cfg.dm_kernel}', lag per horizon from "
            f"the overlap at stride {cfg.stride}"
            + (", Harvey–Leybourne–Newbold correction." if cfg.dm_small_sample_correction else "."),
        ),
        diagnostics={**dict(diagnostics or {}), "dm_kernel": cfg.dm_kernel},
        others=tuple(others),
        coverage_conditioning=conditioning(sigma_source, cuts),
    )


# --------------------------------------------------------------------------- fan chart data


@dataclass(frozen=True)
class FanChartData:
    """Price-level forecast bands for one forecaster and horizon over a sample window.

    Attributes:
        forecaster, horizon: what is drawn.
        target_times: (N,) t + h, where each band is drawn.
        actual: (N,) realised close at t + h (NaN if missing).
        median: (N,) median price level.
        bands: central-interval level → ((N,) lower, (N,) upper) price levels.
    """

    forecaster: str
    horizon: int
    target_times: pd.DatetimeIndex
    actual: np.ndarray
    median: np.ndarray
    bands: dict[float, tuple[np.ndarray, np.ndarray]]


def fan_chart_data(
    forecast: ForecastDistribution,
    horizon: int,
    last_close: np.ndarray,
    targets: np.ndarray,
    levels: Sequence[float] = (0.5, 0.9),
    start: pd.Timestamp | None = None,
    days: float = 7.0,
) -> FanChartData:
    """Bands of the price at t + h for decision times in [start, start + days).

    Args:
        forecast: N decision times × H horizons.
        horizon: one of ``forecast.horizons``.
        last_close: (N,) close at each decision time.
        targets: (N, H) realised log returns.
        start: window start (default: the first decision time).
    """
    if horizon not in forecast.horizons:
        raise ValueError(f"horizon {horizon} not in {forecast.horizons}")
    j = forecast.horizons.index(horizon)
    t0 = start if start is not None else forecast.times[0]
    rows = (forecast.times >= t0) & (forecast.times < t0 + pd.Timedelta(days=days))
    f = forecast.select(rows)
    c = np.asarray(last_close, dtype=np.float64)[rows]
    bands = {}
    for level in levels:
        lo, hi = f.interval(level)
        bands[float(level)] = (log_return_to_price(lo[:, j], c), log_return_to_price(hi[:, j], c))
    return FanChartData(
        forecaster=forecast.name,
        horizon=horizon,
        target_times=f.times + pd.Timedelta(minutes=horizon),
        actual=log_return_to_price(np.asarray(targets, dtype=np.float64)[rows, j], c),
        median=log_return_to_price(f.median()[:, j], c),
        bands=bands,
    )
