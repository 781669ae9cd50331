"""``POST /v1/jobs/ensemble`` (the ``ensemble fit`` command as a job) and ``GET
/v1/algorithms``: what the Train page can start."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from forex_diffusion.errors import ConfigError
from forex_diffusion.service.auth import require_token
from forex_diffusion.service.routes import ERRORS
from forex_diffusion.service.routes import _job_config as job_config
from forex_diffusion.service.schemas import NAME, Day, JobResponse, _In
from forex_diffusion.service.state import ServiceState

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_token)], responses=ERRORS, tags=["ui"]
)


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(_state)]


class EnsembleJobRequest(_In):
    """Fit the stacking ensemble (SSSD + ridge, lasso, gradient boosting; CRPS-weighted pool)
    of ``asset`` on [start, end) with purged walk-forward folds and register it as ``name``
    (``forex-diffusion ensemble fit``)."""

    asset: str = Field(pattern=NAME)
    start: Day
    end: Day
    horizon: int = Field(60, ge=5, le=10_080, description="Horizon in minutes.")
    name: str = Field("stack_ensemble", pattern=NAME, description="Registered name.")
    model_name: str | None = Field(
        None, pattern=NAME, description="SSSD model to load (default: best)."
    )
    refit: bool = Field(False, description="Train SSSD per fold instead of loading it.")
    calibrated: bool = Field(True, description="Recalibrate SSSD's samples per fold.")
    n_splits: int = Field(5, ge=2, le=50, description="Walk-forward folds.")
    num_samples: int = Field(100, ge=2, le=10_000, description="SSSD samples.")
    overrides: list[str] = Field(default_factory=list, max_length=64)


@router.post("/jobs/ensemble", response_model=JobResponse, status_code=202)
def ensemble_job(body: EnsembleJobRequest, state: StateDep) -> dict[str, Any]:
    """Start (or queue) an ensemble fit in a worker process."""
    if body.end <= body.start:
        raise ConfigError(f"end {body.end} is not after start {body.start}")
    config = job_config(state, body.asset, None, body.overrides)
    spec = {
        "config": config.to_dict(),
        "data_dir": str(state.store.data_dir),
        "ensemble": {
            "asset": config.asset.symbol,
            "horizon": body.horizon,
            "start": body.start.isoformat(),
            "end": body.end.isoformat(),
            "name": body.name,
            "model_name": body.model_name,
            "refit": body.refit,
            "calibrated": body.calibrated,
            "n_splits": body.n_splits,
            "num_samples": body.num_samples,
        },
    }
    job = state.jobs.submit("ensemble", config.asset.symbol, spec, epochs=None)
    return state.jobs.view(job)


@router.get("/algorithms")
def algorithms() -> dict[str, Any]:
    """The trainable models: SSSD (its form is the configuration's schema, see
    /v1/config/schema) and the stacking ensemble (its form is the request's schema)."""
    return {
        "algorithms": [
            {"id": "sssd", "label": "SSSD Diffusion", "endpoint": "/v1/jobs/train"},
            {
                "id": "stacking_ensemble",
                "label": "Stacking ensemble (SSSD + ridge/lasso/boosting)",
                "endpoint": "/v1/jobs/ensemble",
                "schema": EnsembleJobRequest.model_json_schema(),
            },
        ]
    }
