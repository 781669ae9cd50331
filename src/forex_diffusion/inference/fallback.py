"""The fallback policy: never serve a model that lost to its baseline unannounced.

Per horizon, the model's card on the served asset (``registry.model_cards``; a global model has
one per asset) decides what is served:

* the model, where the card does not say it lost significantly (skill < 0 with DM p below
  ``inference.fallback.alpha``), where the policy is off, or where there is no card;
* ``fallback:<baseline>``: the best baseline's distribution (mode ``baseline``), the baseline
  the model was judged against (its fitted state is on the card), forecasting from the bars
  closed by the decision time;
* ``pool``: the CRPS-optimal pool of the model and that baseline, with the weights fitted on
  the card's range (mode ``pool``).

Every horizon carries a statement: the card's sentence ("on its test range (...) this model was
3.6 % worse than seasonal EWMA at 60 min (DM p = 0.012)") and what is served instead, or why
there is no card. :func:`plan_serving` decides, :func:`serve` assembles the served samples; the
inference service's ``predict`` and the evaluation's "served" row both go through them.

A served baseline is represented by S stratified quantiles (levels (i + ½)/S) of its
distribution, so its summaries are those of the baseline's law up to the grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from forex_diffusion.config.sssd_config import FallbackConfig
from forex_diffusion.registry.model_cards import BASELINE_NAMES, ModelCard

if TYPE_CHECKING:  # scipy-heavy modules: imported where a fallback is actually served
    from forex_diffusion.models.baselines import Baseline
    from forex_diffusion.models.distribution import ForecastDistribution

MODEL = "model"
POOL = "pool"
FALLBACK_PREFIX = "fallback:"


@dataclass(frozen=True)
class HorizonSource:
    """What is served at one horizon and why.

    Attributes:
        horizon: minutes.
        source: ``"model"``, ``"fallback:<baseline name>"`` or ``"pool"``.
        statement: the card's sentence (and what is served instead), or why there is none.
        baseline: the best baseline on the card (None without a card entry).
        pool_weight: the model's weight when ``source == "pool"``.
    """

    horizon: int
    source: str
    statement: str
    baseline: str | None = None
    pool_weight: float | None = None


@dataclass(frozen=True)
class ServingPlan:
    """The policy's decision for every horizon of a model (from its card).

    Attributes:
        card: the model's card when it applies to these weights, else None.
        card_note: None with a card; otherwise why there is none (never evaluated, or the card
            belongs to other weights).
        horizons: one entry per horizon, in the model's order.
    """

    card: ModelCard | None
    card_note: str | None
    horizons: tuple[HorizonSource, ...]

    def baselines_needed(self) -> tuple[str, ...]:
        """Names of the baselines some horizon serves (alone or pooled), sorted."""
        return tuple(
            sorted({h.baseline for h in self.horizons if h.source != MODEL and h.baseline})
        )

    def sources(self) -> dict[int, str]:
        return {h.horizon: h.source for h in self.horizons}

    def baselines(self) -> dict[str, Baseline]:
        """The fitted baselines that some horizon serves, rebuilt from the card (new objects
        on every call: a baseline keeps per-forecast state, so concurrent forecasts must not
        share one)."""
        from forex_diffusion.models.baselines import baseline_from_state

        if self.card is None:
            return {}
        return {
            name: baseline_from_state(self.card.baselines[name]) for name in self.baselines_needed()
        }


def no_card_note(model_name: str, card: ModelCard | None, asset: str | None = None) -> str:
    """Why a model is served without a card (none for ``asset``, or one of other weights)."""
    on = f" on {asset}" if asset else ""
    if card is None:
        return (
            f"model {model_name} has no card{on}: it was never evaluated{on} against the "
            "baselines on a range it did not see (run `forex-diffusion evaluate` on its test "
            "range)"
        )
    return (
        f"the card of model {model_name}{on} ({card.range_name} {card.dates()}) was computed for "
        "other weights (the model was retrained since); it is served without a card until "
        "`forex-diffusion evaluate` is run again"
    )


def plan_serving(
    card: ModelCard | None,
    horizons: Sequence[int],
    policy: FallbackConfig,
    model_name: str,
    weights_digest: str | None = None,
    asset: str | None = None,
) -> ServingPlan:
    """Decide per horizon what is served (see the module docstring).

    Args:
        card: the model's card on the served asset (None: never evaluated there).
        horizons: the model's horizons (minutes).
        policy: ``inference.fallback``.
        model_name: for the statements.
        weights_digest: the served weights; a card of other weights is not used (None: no check).
        asset: the served asset; a card of another asset is not used (a global model's card on
            one asset says nothing about another; None: no check).
    """
    if card is not None and asset is not None and card.asset != asset.strip().upper():
        card = None
    if card is not None and weights_digest is not None and card.weights_digest != weights_digest:
        note = no_card_note(model_name, card, asset)
        card = None
    elif card is None:
        note = no_card_note(model_name, None, asset)
    else:
        note = None
    entries = []
    for h in horizons:
        entry = card.at(h) if card is not None else None
        if card is None or entry is None:
            text = note if card is None else card.sentence(h)
            entries.append(HorizonSource(int(h), MODEL, str(text)))
            continue
        sentence = card.sentence(h)
        lost = (
            entry.skill is not None
            and entry.dm_pvalue is not None
            and entry.skill < 0
            and entry.dm_pvalue < policy.alpha
        )
        available = entry.best_baseline in card.baselines
        name = BASELINE_NAMES.get(entry.best_baseline, entry.best_baseline)
        if not lost:
            entries.append(HorizonSource(int(h), MODEL, sentence, entry.best_baseline))
        elif not policy.enabled:
            entries.append(
                HorizonSource(
                    int(h),
                    MODEL,
                    f"{sentence}; the fallback policy is off (inference.fallback.enabled), so "
                    "the model is served anyway",
                    entry.best_baseline,
                )
            )
        elif not available:
            entries.append(
                HorizonSource(
                    int(h),
                    MODEL,
                    f"{sentence}; the card lacks the fitted {name} baseline, so the model is "
                    "served anyway (re-run `forex-diffusion evaluate`)",
                    entry.best_baseline,
                )
            )
        elif policy.mode == "pool" and entry.pool_weight is not None:
            w = float(entry.pool_weight)
            entries.append(
                HorizonSource(
                    int(h),
                    POOL,
                    f"{sentence}; serving the CRPS-optimal pool of the model ({w:.0%}) and "
                    f"{name} ({1 - w:.0%}) instead",
                    entry.best_baseline,
                    w,
                )
            )
        else:
            entries.append(
                HorizonSource(
                    int(h),
                    FALLBACK_PREFIX + entry.best_baseline,
                    f"{sentence}; serving {name} instead",
                    entry.best_baseline,
                )
            )
    return ServingPlan(card, note, tuple(entries))


def stratified_samples(dist: ForecastDistribution, n_samples: int) -> np.ndarray:
    """(N, H, S) quantiles of ``dist`` at the levels (i + ½)/S: its law on a stratified grid."""
    levels = (np.arange(n_samples) + 0.5) / n_samples
    return np.moveaxis(dist.quantile(levels), 0, -1)


def serve(
    plan: ServingPlan,
    model: ForecastDistribution,
    baselines: Mapping[str, ForecastDistribution],
) -> tuple[np.ndarray, list[list[str]]]:
    """The served samples of ``model``'s decision times under ``plan``.

    Args:
        plan: from :func:`plan_serving`, with the horizons of ``model`` in the same order.
        model: the model's sample forecast (N decision times, H horizons, S samples).
        baselines: the forecast of every baseline in ``plan.baselines_needed()`` at the same
            decision times and horizons.

    Returns:
        ((N, H, S) served samples, N lists of H sources). A row where the needed baseline is
        undefined (too little history) keeps the model's samples, with source ``"model"``.
    """
    from forex_diffusion.models.pool import LinearPool, pool_forecast

    if model.samples is None:
        raise TypeError(f"forecast {model.name!r}: the policy serves sample forecasts")
    if tuple(h.horizon for h in plan.horizons) != model.horizons:
        raise ValueError(f"plan horizons {plan.sources()} differ from {model.horizons}")
    out = model.samples.copy()
    n, _, s = out.shape
    sources = [[h.source for h in plan.horizons] for _ in range(n)]
    for name in plan.baselines_needed():
        base = baselines[name]
        grid = stratified_samples(base, s)
        using = [(j, h) for j, h in enumerate(plan.horizons) if h.baseline == name]
        weights = np.array(
            [[h.pool_weight or 0.0, 1.0 - (h.pool_weight or 0.0)] for h in plan.horizons]
        )
        mixture = None
        if any(h.source == POOL for _, h in using):
            pool = LinearPool((model.name, base.name), model.horizons, weights, np.zeros((0,)))
            mixture = pool_forecast(pool, [model, base], POOL, s).samples
        for j, h in using:
            if h.source == MODEL:
                continue
            ok = base.valid()[:, j]
            chosen = mixture if h.source == POOL else grid
            assert chosen is not None
            out[ok, j] = chosen[ok, j]
            for i in np.flatnonzero(~ok):
                sources[i][j] = MODEL
    return out, sources
