"""The ``/v1`` endpoints (every one behind ``require_token``)."""

from __future__ import annotations

import asyncio
import json
import platform
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
import pandas as pd
import torch
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from forex_diffusion.config.sssd_config import SSSDConfig, default_pip_size
from forex_diffusion.data.candles import infer_base_timeframe, validate_candles
from forex_diffusion.dataset.windows import SSSDTimeSeriesDataset
from forex_diffusion.errors import ConfigError, DataError, LimitError
from forex_diffusion.inference.sssd_inference import SSSDPrediction
from forex_diffusion.registry.report import registry_report
from forex_diffusion.service.auth import require_token
from forex_diffusion.service.forecasts import finite_or_none, prediction_payload
from forex_diffusion.service.schemas import (
    NAME,
    BarsRequest,
    BarsResponse,
    ErrorResponse,
    EvaluateJobRequest,
    JobList,
    JobResponse,
    ModelsResponse,
    Prediction,
    PredictRequest,
    StatusResponse,
    TrainJobRequest,
    candles_frame,
)
from forex_diffusion.service.state import ServiceState, forecast
from forex_diffusion.timeframes import timeframe_delta, to_utc

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "AuthError: missing or wrong bearer token",
        404: "NotFoundError: unknown asset, model, job or route",
        409: "JobError or CheckpointError",
        413: "LimitError: body, candles, samples or steps over the limit",
        422: "DataError, ConfigError or RequestValidationError",
        429: "BusyError: the queue or the job slots are full",
    }.items()
}
router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=ERRORS)
AssetPath = Annotated[str, Path(pattern=NAME, description="Asset symbol, e.g. EURUSD.")]


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(state_of)]


# ---------------------------------------------------------------------- status, models


@router.get("/status", response_model=StatusResponse)
def status(state: StateDep) -> dict[str, Any]:
    """Loaded models, device, versions, uptime, and the live state of each asset."""
    from importlib.metadata import version

    import fastapi

    state.jobs.refresh()
    models = [
        {
            "asset": loaded.service.asset,
            "model_name": loaded.service.model_name,
            "device": str(loaded.service.device),
            "checkpoint": str(loaded.service.checkpoint_path or "") or None,
        }
        for loaded in state.pool.loaded()
    ]
    assets = [
        {
            "asset": name,
            "last_bar": _iso(state.last_bars.get(name)),
            "last_decision": _iso(live.decision),
            "subscribers": len(live.subscribers),
            "bars_since_prime": live.since_prime,
        }
        for name, live in state.hub.assets.items()
    ]
    return {
        "status": "ok",
        "version": version("forex-diffusion"),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "fastapi": fastapi.__version__,
        },
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "uptime_s": time.monotonic() - state.started,
        "models": models,
        "assets": assets,
        "jobs": state.jobs.counts(),
        "batching": state.settings.batching.enabled,
    }


def _iso(t: pd.Timestamp | None) -> str | None:
    return None if t is None else t.isoformat()


@router.get("/models", response_model=ModelsResponse)
def models(state: StateDep) -> dict[str, Any]:
    """Every registered model (asset, name, configs)."""
    return {"models": [finite_or_none(m.to_dict()) for m in state.registry.list_models()]}


@router.get("/models/{asset}")
def models_of_asset(asset: AssetPath, state: StateDep) -> dict[str, Any]:
    """An asset's models with their checkpoints, runs, latest metrics and inference activity."""
    result: dict[str, Any] = finite_or_none(registry_report(state.registry, asset))
    return result


# ---------------------------------------------------------------------- predict


def _check_sampling(state: ServiceState, num_samples: int | None, steps: int | None) -> None:
    limits = state.settings.limits
    if num_samples is not None and num_samples > limits.max_num_samples:
        raise LimitError(f"num_samples {num_samples} exceeds the limit {limits.max_num_samples}")
    if steps is not None and steps > limits.max_steps:
        raise LimitError(f"steps {steps} exceeds the limit {limits.max_steps}")


def _check_candles(state: ServiceState, n: int) -> None:
    if n > state.settings.limits.max_candles:
        raise LimitError(
            f"{n} candles in one request exceed the limit {state.settings.limits.max_candles}"
        )


def _closed_by(candles: pd.DataFrame, asof: pd.Timestamp | None) -> pd.DataFrame:
    """Only the bars that closed by ``asof`` (all without it)."""
    if asof is None:
        return candles
    base = timeframe_delta(infer_base_timeframe(candles.index.asi8))
    return candles[candles.index + base <= asof]


@router.post("/predict", response_model=Prediction)
async def predict(body: PredictRequest, state: StateDep) -> dict[str, Any]:
    """A multi-horizon forecast from candles in the body, or from the store (``asset`` with an
    optional ``asof``). Concurrent requests of one model are batched; the prepared features of
    store-based forecasts are shared by the requests that need the same ones."""
    _check_sampling(state, body.num_samples, body.steps)
    loaded = await state.pool.get(body.asset, body.model)
    service = loaded.service
    asof = to_utc(body.asof) if body.asof is not None else None
    asset = body.asset.upper()
    batched = body.seed is None and state.settings.batching.enabled
    frame: pd.DataFrame | None = None
    dataset: SSSDTimeSeriesDataset | None = None
    if body.candles is not None:
        _check_candles(state, len(body.candles))
        frame = validate_candles(candles_frame(body.candles), where=f"candles for {asset}")
        frame = _closed_by(frame, asof)
        if frame.empty:
            raise DataError(f"candles for {asset}: no bar closed by asof {asof}")
    elif batched or body.seed is not None:
        dataset = await state.store_dataset(loaded, asset, asof)
    else:  # the Python API on the stored candles (its forecast cache included)
        frame = await anyio.to_thread.run_sync(state.store_frame, service, asset, asof)
    pred: SSSDPrediction
    if batched:
        if dataset is None:
            assert frame is not None
            dataset = await state.torch_thread.run(partial(service.build_features, frame))
        key = (
            *state.pool.key(body.asset, body.model),
            body.num_samples,
            body.sampler,
            body.steps,
            body.eta,
        )
        pred = await state.batcher.submit(key, dataset)
    else:
        generator = None if body.seed is None else torch.Generator().manual_seed(body.seed)
        async with loaded.lock:
            if dataset is not None:
                ready = dataset
                pred = (
                    await state.torch_thread.run(
                        lambda: forecast(
                            service,
                            [ready],
                            body.num_samples,
                            body.sampler,
                            body.steps,
                            body.eta,
                            generator,
                        )
                    )
                )[0]
            else:
                assert frame is not None
                candles = frame
                pred = await state.torch_thread.run(
                    lambda: service.predict(
                        candles,
                        num_samples=body.num_samples,
                        sampler=body.sampler,
                        steps=body.steps,
                        eta=body.eta,
                        generator=generator,
                    )
                )
    return prediction_payload(pred, service, body.quantiles, body.include_samples)


# ---------------------------------------------------------------------- bars, stream


@router.post("/bars", response_model=BarsResponse)
async def bars(body: BarsRequest, state: StateDep) -> dict[str, Any]:
    """Append newly closed bars to the store (validated, atomic, idempotent: a bar already
    stored with the same values is a no-op, one with different values is refused with both
    values named and nothing written) and advance the asset's live state; returns the live
    forecasts made (and ``live_error`` when the live state could not forecast, e.g. too little
    history)."""
    _check_candles(state, len(body.candles))
    asset = body.asset.upper()
    frame = candles_frame(body.candles)
    # validated once, by the store, before anything is written; the errors name "bars for ..."
    report = await anyio.to_thread.run_sync(
        lambda: state.store.write(
            asset, frame, source="api /v1/bars", described_as=f"bars for {asset}"
        )
    )
    last = state.saw_bars(asset, frame.index.max())
    forecasts, live_error = await state.hub.on_new_bars(asset, last)
    return {
        "asset": report.asset,
        "rows_in": report.rows_in,
        "rows_added": report.rows_added,
        "already_stored": report.already_stored,
        "conflicts": report.conflicts,
        "total_bars": report.total_bars,
        "last_bar": last.isoformat(),
        "forecasts": forecasts,
        "live_error": live_error,
    }


def _event(payload: dict[str, Any]) -> str:
    return f"event: forecast\nid: {payload['timestamp']}\ndata: {json.dumps(payload)}\n\n"


@router.get(
    "/stream/{asset}",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "forecast events"}},
)
async def stream(
    asset: AssetPath,
    state: StateDep,
    max_events: Annotated[
        int | None, Query(ge=1, le=100_000, description="Close after this many forecasts.")
    ] = None,
    keepalive_s: Annotated[float, Query(ge=0.05, le=300)] = 15.0,
) -> StreamingResponse:
    """Server-Sent Events: one ``forecast`` event per new 5m bar close of ``asset`` (its
    bars arrive through POST /v1/bars); comments keep the connection alive."""
    live = await state.hub.asset(asset)
    queue = live.subscribe()

    async def events() -> AsyncIterator[str]:
        sent = 0
        try:
            yield ": connected\n\n"
            while max_events is None or sent < max_events:
                try:
                    payload = await asyncio.wait_for(queue.get(), keepalive_s)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield _event(payload)
                sent += 1
        finally:
            live.unsubscribe(queue)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


# ---------------------------------------------------------------------- jobs


def _job_config(
    state: ServiceState, asset: str, model: str | None, overrides: list[str]
) -> SSSDConfig:
    """The service's config for ``asset`` with the request's overrides (paths stay fixed)."""
    for item in overrides:
        if item.strip().lower().startswith("paths."):
            raise ConfigError(f"override {item!r}: paths.* cannot be changed over HTTP")
    name = asset.upper()
    pre = [f"asset.symbol={name}"]
    if not any(o.startswith("asset.pip_size=") for o in overrides):
        pre.append(f"asset.pip_size={default_pip_size(name)}")
    if model is not None:
        pre.append(f"model.name={model}")
    return state.settings.config.with_overrides([*pre, *overrides])


def _data_dir(state: ServiceState) -> str:
    return str(state.store.data_dir)


@router.post("/jobs/train", response_model=JobResponse, status_code=202)
def train_job(body: TrainJobRequest, state: StateDep) -> dict[str, Any]:
    """Start (or queue) training in a worker process; ``resume`` continues an interrupted run."""
    config = _job_config(state, body.asset, body.model, body.overrides)
    spec = {"config": config.to_dict(), "resume": body.resume, "data_dir": _data_dir(state)}
    job = state.jobs.submit("train", config.asset.symbol, spec, epochs=config.training.epochs)
    return state.jobs.view(job)


@router.post("/jobs/evaluate", response_model=JobResponse, status_code=202)
def evaluate_job(body: EvaluateJobRequest, state: StateDep) -> dict[str, Any]:
    """Start (or queue) a walk-forward evaluation in a worker process."""
    if body.end < body.start:
        raise ConfigError(f"end {body.end} is before start {body.start}")
    _check_sampling(state, body.num_samples, None)
    config = _job_config(state, body.asset, None, body.overrides)
    spec = {
        "config": config.to_dict(),
        "asset": config.asset.symbol,
        "start": body.start.isoformat(),
        "end": body.end.isoformat(),
        "model": body.model,
        "baselines_only": body.baselines_only,
        "stride": body.stride,
        "num_samples": body.num_samples,
        "data_dir": _data_dir(state),
    }
    job = state.jobs.submit("evaluate", config.asset.symbol, spec, epochs=None)
    return state.jobs.view(job)


@router.get("/jobs", response_model=JobList)
def list_jobs(state: StateDep) -> dict[str, Any]:
    state.jobs.refresh()
    return {"jobs": [state.jobs.view(j) for j in state.jobs.jobs.values()]}


JobPath = Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$", description="Job id.")]


@router.get("/jobs/{job_id}", response_model=JobResponse)
def get_job(job_id: JobPath, state: StateDep) -> dict[str, Any]:
    """Status, progress (epoch and losses, or forecasts done), ETA and the log tail."""
    return state.jobs.view(state.jobs.get(job_id))


@router.delete("/jobs/{job_id}", response_model=JobResponse)
async def cancel_job(job_id: JobPath, state: StateDep) -> dict[str, Any]:
    """Cancel a job: a training run ends ``interrupted`` in the registry (resume it with a
    train job with ``resume: true``)."""
    job = await anyio.to_thread.run_sync(state.jobs.cancel, job_id)
    return state.jobs.view(job)
