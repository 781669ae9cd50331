"""Model cards from evaluations, and the "served" forecaster row of ``evaluate``.

:func:`card_from_evaluation` turns an evaluation of a model (its ``EvaluationSummary``, the
forecasts and the fitted baselines) into the ``ModelCard`` that ``evaluate`` stores in the
registry: per horizon the best baseline, the skill against it, the DM p-value, the 90 %/50 %
coverage, the verdict and the model's weight in the CRPS-optimal pool with that baseline.

:func:`served_forecast` is what the fallback policy (``inference.fallback``) would have served at
each evaluated decision time, scored as a row of the evaluation. A card judged on the evaluated
range itself would be in-sample, so the row uses:

* the model's stored card when it was computed on a range that ends by the evaluated start
  (and for these weights): the policy exactly as it serves by default;
* otherwise a walk-forward card: at the start of each week of the evaluated range the verdicts
  are recomputed from the decision times whose outcomes were known by then (no verdict before
  ``min_rows`` are known: the model is served, as for a model without a card).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forex_diffusion.config.sssd_config import EvaluationConfig, FallbackConfig
from forex_diffusion.evaluation import metrics as M
from forex_diffusion.evaluation.stat_tests import diebold_mariano, overlap_lag
from forex_diffusion.evaluation.summary import EvaluationSummary
from forex_diffusion.inference.fallback import plan_serving, serve, stratified_samples
from forex_diffusion.models.baselines import Baseline, baseline_state
from forex_diffusion.models.distribution import ForecastDistribution
from forex_diffusion.models.pool import crps_terms, fit_linear_pool, optimal_weights
from forex_diffusion.registry.model_cards import CardHorizon, ModelCard, verdict_of
from forex_diffusion.timeframes import UtcRange

SERVED = "served"
MIN_ROWS = 100  # known outcomes per horizon before a walk-forward verdict is drawn


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def card_from_evaluation(
    summary: EvaluationSummary,
    forecasts: Mapping[str, ForecastDistribution],
    targets: np.ndarray,
    baselines: Sequence[Baseline],
    *,
    model_id: int,
    weights_digest: str,
    evaluated: UtcRange,
    range_name: str,
    report: str | None = None,
) -> ModelCard:
    """The card of ``summary.model_name`` from its evaluation.

    Args:
        summary: the scored evaluation (with a model).
        forecasts: name → forecast on the scored decision times (the model and the baselines).
        targets: (N, H) realised log returns of those decision times.
        baselines: the fitted baselines of the evaluation (their state goes on the card).
        model_id, weights_digest: the evaluated model and weights.
        evaluated: the evaluated range; ``range_name`` how the card names it.
    """
    model = summary.model_name
    if model is None:
        raise ValueError("a model card needs an evaluation of a model, not of baselines only")
    bests = {summary.verdict(h).best_baseline for h in summary.horizons}
    pools = {b: fit_linear_pool([forecasts[model], forecasts[b]], targets) for b in sorted(bests)}
    entries = []
    for j, h in enumerate(summary.horizons):
        best = summary.verdict(h).best_baseline
        m = summary.get(model, h)
        skill = _finite(m.skill_vs_best)
        p = _finite(m.dm.p_value) if m.dm is not None else None
        entries.append(
            CardHorizon(
                horizon=h,
                best_baseline=best,
                skill=skill,
                dm_pvalue=p,
                verdict=verdict_of(skill, p, summary.significance),
                n=m.n,
                crps_model=_finite(m.crps),
                crps_baseline=_finite(summary.get(best, h).crps),
                coverage90=_finite(m.coverage.get("0.9")),
                coverage50=_finite(m.coverage.get("0.5")),
                pool_weight=float(pools[best].weights[j, 0]),
            )
        )
    return ModelCard(
        asset=summary.asset,
        model_id=model_id,
        model_name=model,
        weights_digest=weights_digest,
        range_name=range_name,
        window_start=evaluated.start.to_pydatetime(),
        window_end=evaluated.end.to_pydatetime(),
        significance=summary.significance,
        horizons=tuple(entries),
        baselines={b.name: baseline_state(b) for b in baselines if b.name in bests},
        n_decisions=summary.n_decisions,
        report=report,
    )


@dataclass(frozen=True)
class ServedRow:
    """The served forecaster row: its forecast, its label and a note for the report."""

    forecast: ForecastDistribution
    label: str
    note: str


def _walk_forward_card(
    forecasts: Mapping[str, ForecastDistribution],
    crps: Mapping[str, np.ndarray],
    model: str,
    baselines: Sequence[Baseline],
    known: np.ndarray,
    ecfg: EvaluationConfig,
    template: ModelCard,
    upto: pd.Timestamp,
) -> ModelCard:
    """A card from the decision times whose outcomes are ``known`` (N, H) at ``upto``."""
    names = [b.name for b in baselines]
    entries = []
    horizons = forecasts[model].horizons
    for j, h in enumerate(horizons):
        ok = known[:, j]
        if ok.sum() < MIN_ROWS:
            continue
        best = min(names, key=lambda b: float(np.mean(crps[b][ok, j])))
        skill = _finite(M.crps_skill(crps[model][ok, j], crps[best][ok, j]))
        dm = diebold_mariano(
            crps[model][ok, j],
            crps[best][ok, j],
            lag=overlap_lag(h, ecfg.stride),
            hln=ecfg.dm_small_sample_correction,
            kernel=ecfg.dm_kernel,
        )
        p = _finite(dm.p_value)
        entries.append(
            CardHorizon(
                horizon=h,
                best_baseline=best,
                skill=skill,
                dm_pvalue=p,
                verdict=verdict_of(skill, p, ecfg.significance),
                n=int(ok.sum()),
                pool_weight=None,
            )
        )
    return template.model_copy(
        update={"horizons": tuple(entries), "window_end": upto.to_pydatetime()}
    )


def _with_pool_weights(
    card: ModelCard,
    forecasts: Mapping[str, ForecastDistribution],
    samples: Mapping[str, np.ndarray],
    model: str,
    targets: np.ndarray,
    known: np.ndarray,
) -> ModelCard:
    """The card with each lost horizon's pool weight fitted on the known outcomes."""
    horizons = forecasts[model].horizons
    entries = []
    for e in card.horizons:
        j = horizons.index(e.horizon)
        y = np.where(known[:, j], targets[:, j], np.nan)
        a, B = crps_terms([samples[model][:, j], samples[e.best_baseline][:, j]], y)
        entries.append(e.model_copy(update={"pool_weight": float(optimal_weights(a, B)[0])}))
    return card.model_copy(update={"horizons": tuple(entries)})


def served_forecast(
    forecasts: Mapping[str, ForecastDistribution],
    model: str,
    baselines: Sequence[Baseline],
    targets: np.ndarray,
    policy: FallbackConfig,
    ecfg: EvaluationConfig,
    *,
    prior_card: ModelCard | None,
    model_id: int,
    weights_digest: str,
    evaluated: UtcRange,
    block: pd.Timedelta = pd.Timedelta(days=7),
) -> ServedRow:
    """What the fallback policy serves at each scored decision time (see the module docstring).

    Args:
        forecasts: name → forecast on the N scored decision times (the model and baselines).
        model: the model's name in ``forecasts``.
        baselines: the fitted baselines (their names are keys of ``forecasts``).
        targets: (N, H) realised log returns.
        policy: ``inference.fallback``.
        ecfg: the evaluation settings (significance, DM options, stride).
        prior_card: the model's stored card (used when it ends by the evaluated start).
    """
    fc = forecasts[model]
    horizons, times = fc.horizons, fc.times
    usable = (
        prior_card is not None
        and prior_card.weights_digest == weights_digest
        and pd.Timestamp(prior_card.window_end) <= evaluated.start
    )
    if usable:
        assert prior_card is not None
        plan = plan_serving(prior_card, horizons, policy, model, weights_digest)
        samples, _ = serve(plan, fc, {b: forecasts[b] for b in plan.baselines_needed()})
        label = f"served (card of {prior_card.range_name} {prior_card.dates()})"
        note = (
            f"Served: what the fallback policy (inference.fallback: mode {policy.mode}, alpha "
            f"{policy.alpha:g}{'' if policy.enabled else ', disabled'}) serves with the model's "
            f"card of its {prior_card.range_name} {prior_card.dates()}, computed before this "
            "range (out of sample)."
        )
        return ServedRow(
            ForecastDistribution.from_samples(SERVED, times, horizons, samples), label, note
        )
    assert fc.samples is not None
    y = np.asarray(targets, dtype=np.float64)
    names = [b.name for b in baselines]
    crps = {n: forecasts[n].crps(y) for n in [model, *names]}
    comp: dict[str, np.ndarray] = {}
    if policy.mode == "pool":  # the pool's components as samples
        s = fc.samples.shape[-1]
        comp = {model: fc.samples, **{n: stratified_samples(forecasts[n], s) for n in names}}
    template = ModelCard(
        asset="",
        model_id=model_id,
        model_name=model,
        weights_digest=weights_digest,
        range_name="walk-forward card",
        window_start=evaluated.start.to_pydatetime(),
        window_end=evaluated.start.to_pydatetime(),
        significance=ecfg.significance,
        horizons=(),
        baselines={b.name: baseline_state(b) for b in baselines},
        n_decisions=0,
    )
    out = fc.samples.copy()
    start = times.min() if len(times) else None
    while start is not None and start <= times.max():
        rows = (times >= start) & (times < start + block)
        if rows.any():
            known = np.stack([times + pd.Timedelta(minutes=h) <= start for h in horizons], axis=1)
            card = _walk_forward_card(
                forecasts, crps, model, baselines, known, ecfg, template, start
            )
            if policy.mode == "pool" and card.horizons:
                card = _with_pool_weights(card, forecasts, comp, model, y, known)
            plan = plan_serving(card, horizons, policy, model, weights_digest)
            part = fc.select(rows)
            needed = {b: forecasts[b].select(rows) for b in plan.baselines_needed()}
            out[rows], _ = serve(plan, part, needed)
        start = start + block
    label = "served (walk-forward card)"
    note = (
        f"Served: what the fallback policy (inference.fallback: mode {policy.mode}, alpha "
        f"{policy.alpha:g}{'' if policy.enabled else ', disabled'}) serves with a walk-forward "
        "card: at the start of each week the verdicts are recomputed from the decision times "
        f"whose outcomes were known by then (the model is served until {MIN_ROWS} are known), "
        "because no card of this model from before this range exists; a card from the range "
        "itself would be in-sample."
    )
    return ServedRow(ForecastDistribution.from_samples(SERVED, times, horizons, out), label, note)
