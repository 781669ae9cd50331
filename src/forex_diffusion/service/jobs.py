"""Training and evaluation jobs in worker processes (``multiprocessing`` spawn), at most
``max_jobs`` at a time; the rest wait in order.

A job's folder holds ``job.log`` (the worker's stdout/stderr: loguru lines, tqdm progress) and
``result.json``. Progress is read from the log: the trainer's ``epoch N: train_loss=...``
lines, the evaluation's ``done/total`` progress bar. Cancelling sends SIGTERM: the trainer
stops, marks its registry run ``interrupted`` and leaves ``last.ckpt``, so a train job with
``resume`` continues it; a worker that does not stop in time is killed and its run is marked
interrupted through the registry's stale-run check.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

from forex_diffusion.errors import JobError, NotFoundError
from forex_diffusion.registry.repository import Registry

JobKind = Literal["train", "evaluate", "ensemble"]
_EPOCH = re.compile(r"epoch (\d+): (\w+=.*)")
_METRIC = re.compile(r"(\w+)=([-+0-9.eE]+|nan|inf)")
_BAR = re.compile(r"(\d+)/(\d+) \[")
_FINAL = {"completed", "failed", "interrupted", "cancelled"}


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


# ---------------------------------------------------------------------- worker process


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_job(kind: JobKind, spec: dict[str, Any], job_dir: str) -> None:
    """Body of the worker process: run the train, evaluate or ``ensemble fit`` function the CLI
    runs, with stdout/stderr going to ``job.log``, and write ``result.json``."""
    folder = Path(job_dir)
    log = open(folder / "job.log", "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # the trainer installs its own during fit
    from forex_diffusion.config.sssd_config import config_from_dict

    result: dict[str, Any]
    try:
        config = config_from_dict(spec["config"], source="job request")
        if kind == "train":
            from forex_diffusion.training.train_sssd import train_from_config

            trained = train_from_config(config, resume=spec["resume"], data_dir=spec["data_dir"])
            result = json.loads(trained.to_json())
        elif kind == "ensemble":
            result = _fit_ensemble(config, spec, folder)
        else:
            from forex_diffusion.evaluation.walk_forward import evaluate

            evaluated = evaluate(
                config,
                spec["asset"],
                spec["start"],
                spec["end"],
                model_name=spec["model"],
                baselines_only=spec["baselines_only"],
                stride=spec["stride"],
                num_samples=spec["num_samples"],
                data_dir=spec["data_dir"],
                progress=True,
            )
            result = {
                "status": "completed",
                "report": str(evaluated.files.report),
                "metric_rows": evaluated.metric_rows,
                "summary": evaluated.text(),
            }
    except KeyboardInterrupt:
        result = {"status": "interrupted", "error": "cancelled before training started"}
    except Exception as exc:  # reported in the job, not raised into a dead process
        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.flush()
    sys.stderr.flush()
    tmp = folder / "result.json.tmp"
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, folder / "result.json")


def _fit_ensemble(config: Any, spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``ensemble fit`` with the job's config (written beside the log: the SSSD member
    reloads it from there in each fold)."""
    from forex_diffusion.ensemble.workflow import EnsembleSpec, fit_ensemble

    path = folder / "config.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    ensemble_spec = EnsembleSpec(
        **spec["ensemble"], config_path=str(path), data_dir=spec["data_dir"]
    )
    record, fitted = fit_ensemble(ensemble_spec, config)
    return {
        "status": "completed",
        "asset": record.asset,
        "model_name": record.model_name,
        "summary": fitted.summary,
    }


# ---------------------------------------------------------------------- manager


@dataclass
class Job:
    id: str
    kind: JobKind
    asset: str
    spec: dict[str, Any]
    folder: Path
    epochs: int | None
    status: str = "queued"
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    process: BaseProcess | None = None
    cancel_requested: bool = False
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "job.log"


class JobManager:
    """Starts, tracks and cancels jobs; ``refresh`` (called on reads and periodically)
    collects finished workers and starts waiting jobs."""

    def __init__(
        self, folder: Path, max_jobs: int, tail_lines: int, registry: Registry | None
    ) -> None:
        self.folder = folder
        self.max_jobs = max_jobs
        self.tail_lines = tail_lines
        self.registry = registry
        self.jobs: dict[str, Job] = {}
        self._lock = threading.RLock()  # endpoints run in worker threads
        self._context = multiprocessing.get_context("spawn")

    # ------------------------------------------------------------------ lifecycle
    def submit(self, kind: JobKind, asset: str, spec: dict[str, Any], epochs: int | None) -> Job:
        job_id = uuid.uuid4().hex[:16]
        folder = self.folder / job_id
        folder.mkdir(parents=True, exist_ok=False)
        (folder / "job.log").touch()
        job = Job(job_id, kind, asset, spec, folder, epochs)
        with self._lock:
            self.jobs[job_id] = job
        self.refresh()
        return job

    def _start(self, job: Job) -> None:
        process = self._context.Process(
            target=run_job,
            args=(job.kind, job.spec, str(job.folder)),
            name=f"forex-diffusion-{job.kind}-{job.id}",
            daemon=False,
        )
        process.start()
        job.process = process
        job.status = "running"
        job.started_at = _now()

    def _finish(self, job: Job) -> None:
        assert job.process is not None
        code = job.process.exitcode
        job.process.close()
        job.process = None
        job.finished_at = _now()
        path = job.folder / "result.json"
        result = json.loads(path.read_text()) if path.is_file() else None
        job.result = result
        if result is not None:
            job.status = str(result.get("status", "failed"))
            job.error = result.get("error")
        elif job.cancel_requested:
            job.status = "interrupted" if job.kind == "train" else "cancelled"
        else:
            job.status = "failed"
            job.error = f"worker process exited with code {code} without a result"
        if job.status not in _FINAL:
            job.status = "failed"
        if job.kind == "train" and job.status != "completed" and self.registry is not None:
            self.registry.mark_stale_runs_interrupted()  # a run whose worker died mid-way

    def refresh(self) -> None:
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        for job in self.jobs.values():
            if job.process is not None and not job.process.is_alive():
                job.process.join()
                self._finish(job)
        running = sum(1 for j in self.jobs.values() if j.status == "running")
        for job in sorted(self.jobs.values(), key=lambda j: j.created_at):
            if running >= self.max_jobs:
                break
            if job.status == "queued":
                self._start(job)
                running += 1

    def get(self, job_id: str) -> Job:
        self.refresh()
        if job_id not in self.jobs:
            raise NotFoundError(
                f"no job {job_id!r}; known jobs: {sorted(self.jobs) or 'none'} (POST /v1/jobs/train)"
            )
        return self.jobs[job_id]

    def cancel(self, job_id: str, wait_s: float = 60.0) -> Job:
        """Stop a job: a queued one never starts; a running one gets SIGTERM (and SIGKILL after
        ``wait_s``). Blocking (run it in a thread)."""
        with self._lock:
            job = self.get(job_id)
            if job.status in _FINAL:
                raise JobError(f"job {job_id} has already ended ({job.status}); nothing to cancel")
            job.cancel_requested = True
            if job.status == "queued":
                job.status = "cancelled"
                job.finished_at = _now()
                return job
            process = job.process
            assert process is not None
            process.terminate()
        process.join(wait_s)
        if process.is_alive():
            process.kill()
            process.join()
        self.refresh()
        return job

    def close(self, wait_s: float = 30.0) -> None:
        """Stop every running job (train runs end ``interrupted``, resumable)."""
        for job in list(self.jobs.values()):
            if job.status == "running":
                self.cancel(job.id, wait_s)

    # ------------------------------------------------------------------ views
    def _log_lines(self, job: Job) -> list[str]:
        try:
            with open(job.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 256_000))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]

    def progress(self, job: Job, lines: list[str]) -> dict[str, Any]:
        """Epoch and losses (train) or forecasts done/total (evaluate), parsed from the log."""
        out: dict[str, Any] = {"loss": {}}
        if job.kind == "train":
            for line in reversed(lines):
                match = _EPOCH.search(line)
                if match:
                    out["epoch"] = int(match.group(1))
                    out["loss"] = {k: float(v) for k, v in _METRIC.findall(match.group(2))}
                    break
            out["epochs"] = job.epochs
            if "epoch" in out and job.epochs:
                out["fraction"] = min(1.0, (out["epoch"] + 1) / job.epochs)
        else:
            for line in reversed(lines):
                match = _BAR.search(line)
                if match and int(match.group(2)) > 0:
                    out["done"], out["total"] = int(match.group(1)), int(match.group(2))
                    out["fraction"] = out["done"] / out["total"]
                    break
        if job.status == "completed":
            out["fraction"] = 1.0
        return out

    def view(self, job: Job) -> dict[str, Any]:
        lines = self._log_lines(job)
        progress = self.progress(job, lines)
        eta = None
        fraction = progress.get("fraction")
        if job.status == "running" and job.started_at is not None and fraction:
            elapsed = (_now() - job.started_at).total_seconds()
            eta = elapsed * (1.0 - fraction) / fraction
        return {
            "id": job.id,
            "kind": job.kind,
            "asset": job.asset,
            "status": job.status,
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "progress": progress,
            "eta_s": eta,
            "log_tail": lines[-self.tail_lines :],
            "result": job.result,
            "error": job.error,
        }

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for job in self.jobs.values():
            out[job.status] = out.get(job.status, 0) + 1
        return out
