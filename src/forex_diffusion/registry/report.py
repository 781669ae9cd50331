"""The registry's report of an asset or model: models, runs, checkpoints, metrics (JSON-ready).

Built from the ``Registry`` facade only; the ``registry show`` command and the HTTP service
both render it.
"""

from __future__ import annotations

from typing import Any

from forex_diffusion.assets import normalize_asset
from forex_diffusion.errors import NotFoundError
from forex_diffusion.registry.repository import Registry


def registry_report(
    reg: Registry, asset: str, model_name: str | None = None, max_runs: int = 20
) -> dict[str, Any]:
    """Everything about an asset (or one model): models with their runs, checkpoints,
    latest metrics, inference activity and model cards (``card``: the one of ``asset``;
    ``cards``: every card of the model by asset, those of a global model per served asset),
    plus the latest baseline metrics (JSON-ready).

    An asset evaluated only by baselines (no model) reports its baselines and no models.

    Raises:
        NotFoundError: unknown asset or model, listing what exists.
    """
    asset = normalize_asset(asset)
    try:
        models = reg.find_models(asset, model_name)
    except NotFoundError:
        if model_name is not None or not reg.has_metrics(asset):
            raise
        models = []
    entries = []
    for model in models:
        runs = reg.list_runs(model_id=model.id)
        inference = reg.list_inference_logs(model_id=model.id, limit=1)
        checkpoints = reg.list_checkpoints(model_id=model.id)
        best = [c for c in checkpoints if c.is_best]
        cards = reg.model_cards(model.id)
        entries.append(
            {
                "model": model.to_dict(),
                "best_checkpoint": best[0].to_dict() if best else None,
                "checkpoints": [c.to_dict() for c in checkpoints],
                "runs": [r.to_dict() for r in runs[:max_runs]],
                "n_runs": len(runs),
                # every asset the model was evaluated on (a global model's rows are stored
                # under the assets it served)
                "latest_metrics": [m.to_dict() for m in reg.latest_model_metrics(model.id)],
                "inference": {
                    "count": reg.count_inference_logs(model.id),
                    "latest": inference[0].to_dict() if inference else None,
                },
                "card": card.to_dict() if (card := cards.get(asset)) else None,
                "cards": {a: c.to_dict() for a, c in cards.items()},
            }
        )
    baselines = [m.to_dict() for m in reg.latest_baseline_metrics(asset)]
    return {
        "asset": asset,
        "database": reg.masked_url,
        "models": entries,
        "baseline_metrics": baselines,
    }
