"""Endpoints of the Models, Train and Evaluate pages: run logs, stale runs, resume, a training
job's per-epoch history, an evaluation job's report and its figures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from forex_diffusion.config.sssd_config import config_from_dict
from forex_diffusion.errors import JobError, NotFoundError
from forex_diffusion.service.auth import require_token
from forex_diffusion.service.jobs import _EPOCH, _METRIC, Job
from forex_diffusion.service.routes import ERRORS
from forex_diffusion.service.routes import _job_config as job_config
from forex_diffusion.service.state import ServiceState

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_token)], responses=ERRORS, tags=["ui"]
)
REPORT_FIGURES = ("fan_chart.png", "reliability.png", "pit_histogram.png", "crps_by_hour.png")
_STEP = re.compile(r"step (\d+): batch (\d+)/(\d+) of epoch (\d+)")
JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{1,32}$")]
RunId = Annotated[int, PathParam(ge=1, le=2**62)]


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


StateDep = Annotated[ServiceState, Depends(_state)]


def _read_tail(path: Path, max_bytes: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")


# ---------------------------------------------------------------------- registry runs


@router.get("/runs/{run_id}/log")
def run_log(
    run_id: RunId, state: StateDep, max_bytes: Annotated[int, Query(ge=1, le=2_000_000)] = 200_000
) -> dict[str, Any]:
    """The end of a training run's log file."""
    run = state.registry.get_run(run_id)
    if not run.log_path or not Path(run.log_path).is_file():
        raise NotFoundError(f"run {run_id} has no log file (log_path {run.log_path!r})")
    return {
        "run_id": run_id,
        "path": run.log_path,
        "text": _read_tail(Path(run.log_path), max_bytes),
    }


@router.post("/runs/mark-stale")
def mark_stale(state: StateDep) -> dict[str, Any]:
    """Mark ``running`` runs whose process is gone as ``interrupted`` (``registry
    mark-stale``); returns the runs marked."""
    marked = state.registry.mark_stale_runs_interrupted()
    return {"marked": [r.to_dict() for r in marked]}


def _latest_train_job(state: ServiceState, asset: str, model_name: str) -> Job | None:
    jobs = [
        j
        for j in state.jobs.jobs.values()
        if j.kind == "train"
        and j.asset == asset
        and j.spec["config"]["model"]["name"] == model_name
    ]
    return max(jobs, key=lambda j: j.created_at) if jobs else None


@router.post("/runs/{run_id}/resume", status_code=202)
def resume_run(run_id: RunId, state: StateDep) -> dict[str, Any]:
    """Continue an interrupted run from its ``last.ckpt`` in a train job: with the config of
    the job that started it, or (a run started elsewhere) the service's config with the run's
    training parameters and data range."""
    run = state.registry.get_run(run_id)
    if run.status != "interrupted":
        raise JobError(f"run {run_id} is {run.status}; only an interrupted run can be resumed")
    previous = _latest_train_job(state, run.asset, run.model_name)
    if previous is not None:
        config = config_from_dict(previous.spec["config"], source=f"job {previous.id}")
    else:
        base = job_config(state, run.asset, run.model_name, [])
        data = base.to_dict()
        data["training"] = {**data["training"], **run.hyperparameters}
        data["data"] = {**data["data"], "splits": run.data_range or data["data"]["splits"]}
        config = config_from_dict(data, source=f"run {run_id}")
    spec = {"config": config.to_dict(), "resume": True, "data_dir": str(state.store.data_dir)}
    job = state.jobs.submit("train", config.asset.symbol, spec, epochs=config.training.epochs)
    return state.jobs.view(job)


# ---------------------------------------------------------------------- job details


def epoch_history(text: str) -> list[dict[str, float]]:
    """Every ``epoch N: key=value, ...`` line of a training log, the last one per epoch."""
    rows: dict[int, dict[str, float]] = {}
    for line in text.splitlines():
        match = _EPOCH.search(line)
        if match:
            epoch = int(match.group(1))
            rows[epoch] = {"epoch": float(epoch)} | {
                k: float(v) for k, v in _METRIC.findall(match.group(2))
            }
    return [rows[e] for e in sorted(rows)]


@router.get("/jobs/{job_id}/history")
def job_history(job_id: JobId, state: StateDep) -> dict[str, Any]:
    """A training job's per-epoch metrics (train/val loss, val coverage, val CRPS) and its
    latest step (global step, batch of the current epoch)."""
    job = state.jobs.get(job_id)
    text = _read_tail(job.log_path, 4_000_000) if job.log_path.is_file() else ""
    return {"id": job.id, "epochs": epoch_history(text), "step": latest_step(text)}


def latest_step(text: str) -> dict[str, int] | None:
    """The last ``step N: batch i/n of epoch e`` line of a training log."""
    matches = _STEP.findall(text)
    if not matches:
        return None
    step, batch, batches, epoch = (int(g) for g in matches[-1])
    return {"step": step, "batch": batch, "batches": batches, "epoch": epoch}


def _report_dir(state: ServiceState, job_id: str) -> Path:
    job = state.jobs.get(job_id)
    if job.kind != "evaluate":
        raise JobError(f"job {job_id} is a {job.kind} job; reports belong to evaluate jobs")
    if job.status != "completed" or not job.result or "report" not in job.result:
        raise JobError(f"job {job_id} is {job.status}; its report exists once it has completed")
    return Path(str(job.result["report"])).parent


@router.get("/jobs/{job_id}/report")
def job_report(job_id: JobId, state: StateDep) -> dict[str, Any]:
    """A completed evaluation's report: the first table and verdicts (text), the whole
    report (markdown), metrics.json, and the figures present."""
    folder = _report_dir(state, job_id)
    job = state.jobs.get(job_id)
    assert job.result is not None
    metrics = folder / "metrics.json"
    return {
        "id": job_id,
        "folder": str(folder),
        "summary": job.result.get("summary"),
        "markdown": (folder / "report.md").read_text(encoding="utf-8"),
        "metrics": json.loads(metrics.read_text()) if metrics.is_file() else None,
        "figures": [name for name in REPORT_FIGURES if (folder / name).is_file()],
    }


@router.get("/jobs/{job_id}/report/{name}", response_class=FileResponse)
def job_report_figure(job_id: JobId, name: str, state: StateDep) -> FileResponse:
    """One figure of a completed evaluation's report (``fan_chart.png``, ...)."""
    if name not in REPORT_FIGURES:
        raise NotFoundError(f"no figure {name!r}; figures: {', '.join(REPORT_FIGURES)}")
    path = _report_dir(state, job_id) / name
    if not path.is_file():
        raise NotFoundError(f"the report of job {job_id} has no {name}")
    return FileResponse(path, media_type="image/png")
