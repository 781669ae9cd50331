"""Model cards: how a model did against the honest baselines on a range it never saw.

A card is written by ``forex-diffusion evaluate`` (one per model and evaluated asset, replaced by
each new evaluation of that pair: a global model has one per asset it was evaluated on) and read
by the inference service for the asset it serves, which shows its sentence next to each forecast
and lets the fallback policy serve the best baseline where the model lost significantly.

Per horizon it holds the best baseline (the lowest CRPS on the range) and the model's CRPS skill
against it (1 − CRPS_model / CRPS_baseline), the Diebold–Mariano p-value of that difference,
the model's 90 % and 50 % coverage, the verdict at the evaluation's significance, and the
model's weight in the CRPS-optimal pool of the model and that baseline. ``baselines`` keeps the
fitted state of each baseline named best somewhere (``models.baselines.baseline_state``), so the
baseline that is served is the one the model was judged against.

The session functions take an open ``Session`` inside the caller's transaction.
"""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from forex_diffusion.registry import models_repo
from forex_diffusion.registry.models import ModelCardRow, utcnow
from forex_diffusion.registry.values import to_json, utc

Verdict = Literal["better", "level", "worse"]

BASELINE_NAMES = {
    "rolling": "rolling σ",
    "ewma": "EWMA",
    "ewma_seasonal": "seasonal EWMA",
    "garch": "GARCH",
}
"""Short names of the baselines in card sentences."""


def verdict_of(skill: float | None, dm_pvalue: float | None, alpha: float) -> Verdict:
    """better / worse: skill of that sign with DM p < ``alpha``; level otherwise (also when
    either is missing)."""
    if skill is None or dm_pvalue is None or not math.isfinite(skill):
        return "level"
    if not math.isfinite(dm_pvalue) or dm_pvalue >= alpha:
        return "level"
    return "better" if skill > 0 else "worse" if skill < 0 else "level"


def _pct(x: float) -> str:
    return f"{abs(x) * 100:.1f} %"


class CardHorizon(BaseModel):
    """The card at one horizon (CRPS in log-return units, skill as a fraction)."""

    model_config = ConfigDict(frozen=True)

    horizon: int
    best_baseline: str
    skill: float | None
    dm_pvalue: float | None
    verdict: Verdict
    n: int
    crps_model: float | None = None
    crps_baseline: float | None = None
    coverage90: float | None = None
    coverage50: float | None = None
    pool_weight: float | None = None  # the model's weight in the pool with ``best_baseline``

    @property
    def baseline_name(self) -> str:
        return BASELINE_NAMES.get(self.best_baseline, self.best_baseline)

    def comparison(self) -> str:
        """``3.6 % worse than seasonal EWMA`` (level: ``level with ... (1.2 % worse, ...)``)."""
        base = self.baseline_name
        p = f"DM p = {self.dm_pvalue:.3g}" if self.dm_pvalue is not None else "DM p n/a"
        if self.skill is None or not math.isfinite(self.skill):
            return f"not comparable with {base}"
        side = "better" if self.skill > 0 else "worse"
        if self.verdict == "level":
            return f"level with {base} ({_pct(self.skill)} {side}, {p})"
        return f"{_pct(self.skill)} {side} than {base} ({p})"


class ModelCard(BaseModel):
    """A model's verdict against the baselines on one evaluated range (JSON-ready, frozen).

    Attributes:
        asset: the evaluated asset (a per-asset model's own; one of the assets a global model
            serves); the card is stored and looked up per (model, asset).
        model_id, model_name: the model.
        weights_digest: the evaluated weights (``models.checkpoint.weights_digest``); a card is
            valid for a service only when its model has these weights.
        range_name: "test range" when the range lies in the model's test split, else
            "evaluation range".
        window_start, window_end: the evaluated range [start, end) (UTC).
        significance: the DM level of the verdicts.
        horizons: one entry per horizon.
        baselines: fitted state of each baseline that is best at some horizon, by name.
        report: the evaluation's report.md.
        created_at: when the card was computed.
    """

    model_config = ConfigDict(frozen=True)

    asset: str
    model_id: int
    model_name: str
    weights_digest: str
    range_name: str
    window_start: datetime
    window_end: datetime
    significance: float
    horizons: tuple[CardHorizon, ...]
    baselines: dict[str, dict[str, Any]]
    n_decisions: int
    report: str | None = None
    created_at: datetime | None = None

    def at(self, horizon: int) -> CardHorizon | None:
        """The entry of ``horizon`` (None when the card has none)."""
        return next((h for h in self.horizons if h.horizon == int(horizon)), None)

    def dates(self) -> str:
        """``2019-01-01 → 2019-12-31`` (a midnight end is shown as the day before)."""
        end = self.window_end
        last = (end - timedelta(days=1)).date() if end.time() == time(0) else end.date()
        return f"{self.window_start.date()} → {last}"

    def sentence(self, horizon: int) -> str:
        """``on its test range (2019-01-01 → 2019-12-31) this model was 3.6 % worse than
        seasonal EWMA at 60 min (DM p = 0.012)``."""
        entry = self.at(horizon)
        where = f"on its {self.range_name} ({self.dates()})"
        if entry is None:
            return f"{where} this model was not evaluated at {horizon} min"
        return f"{where} this model was {entry.comparison()} at {horizon} min"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (timestamps as ISO strings, non-finite numbers as null)."""
        return dict(to_json(self.model_dump(mode="json"), "model card", finite_only=False))


# --------------------------------------------------------------------------- session functions


def save(session: Session, card: ModelCard) -> ModelCard:
    """Store ``card`` as the card of its (model, asset), replacing the previous one; returns it
    as stored.

    Raises:
        RegistryError: the model does not serve ``card.asset`` (a per-asset model of another
            asset; see ``models_repo.serves``).
    """
    models_repo.by_id_serving(session, card.model_id, card.asset, "model card")
    start, end = utc(card.window_start, "window_start"), utc(card.window_end, "window_end")
    stamped = card.model_copy(update={"created_at": utcnow()})
    payload = to_json(stamped.model_dump(mode="json"), "model card", finite_only=False)
    row = session.scalars(
        select(ModelCardRow).where(
            ModelCardRow.model_id == card.model_id, ModelCardRow.asset == card.asset
        )
    ).one_or_none()
    if row is None:
        row = ModelCardRow(model_id=card.model_id, asset=card.asset, created_at=utcnow())
        session.add(row)
    row.window_start, row.window_end, row.card = start, end, payload
    session.flush()
    return ModelCard.model_validate(payload)


def of_model(session: Session, model_id: int, asset: str) -> ModelCard | None:
    """The card of model ``model_id`` on ``asset`` (None when it has none)."""
    row = session.scalars(
        select(ModelCardRow).where(
            ModelCardRow.model_id == int(model_id), ModelCardRow.asset == asset
        )
    ).one_or_none()
    return None if row is None else ModelCard.model_validate(row.card)


def all_of_model(session: Session, model_id: int) -> dict[str, ModelCard]:
    """Every card of model ``model_id`` by asset (sorted; empty when it has none)."""
    rows = session.scalars(
        select(ModelCardRow)
        .where(ModelCardRow.model_id == int(model_id))
        .order_by(ModelCardRow.asset)
    )
    return {row.asset: ModelCard.model_validate(row.card) for row in rows}
