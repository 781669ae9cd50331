"""``train-many``: one Ray task per job, each running the ``train`` command's own function
(``train_from_config``) against the registry every worker shares."""

from __future__ import annotations

import sys
import time
from contextlib import redirect_stdout
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from rich.console import Console
from rich.live import Live

from forex_diffusion.config.sssd_config import config_from_dict
from forex_diffusion.registry import Registry
from forex_diffusion.scale.cluster import ClusterRequest, check_shared_registry, ray_session
from forex_diffusion.scale.jobs import (
    JobOutcome,
    TrainJob,
    close_orphaned_run,
    plan_jobs,
)
from forex_diffusion.scale.progress import ProgressBoard, ProgressReporter, progress_table

POLL_S = 0.5


def run_job(job: TrainJob, db_url: str, board: Any, threads: int) -> JobOutcome:
    """The body of one Ray task: train ``job`` as ``forex-diffusion train`` would."""
    import torch

    from forex_diffusion.allocator import keep_freed_memory
    from forex_diffusion.training.train_sssd import train_from_config

    torch.set_num_threads(max(1, threads))
    keep_freed_memory()  # as the command line does
    config = config_from_dict(job.config, source=f"train-many job {job.key}")
    board.update.remote(job.key, {"status": "starting", "epochs": config.training.epochs})
    with Registry(db_url) as registry:
        result = train_from_config(
            config,
            resume=job.resume,
            data_dir=job.data_dir,
            registry=registry,
            callbacks=[ProgressReporter(board, job.key)],
        )
    return JobOutcome(
        key=job.key,
        status=result.status,
        run_id=result.run_id,
        best_checkpoint=None if result.best_checkpoint is None else str(result.best_checkpoint),
        best_val_loss=result.best_val_loss,
        epochs_completed=result.epochs_completed,
        duration_s=result.duration_s,
        metrics=result.metrics,
    )


def train_many(
    jobs: list[TrainJob],
    request: ClusterRequest,
    db_url: str,
    resume: bool = False,
    console: Console | None = None,
) -> list[JobOutcome]:
    """Run ``jobs`` on Ray and return one outcome per job, in the order given.

    A task that raises is ``failed``; a task whose worker or node died is ``interrupted``, and
    the registry run it left ``running`` is closed the same way. With ``resume`` the jobs whose
    newest run completed are skipped and the others continue from their last checkpoint.

    Raises:
        ConfigError: Ray missing, or a SQLite registry with workers on other hosts.
    """
    console = console or Console(stderr=True)
    with Registry(db_url) as registry:
        todo, skipped = plan_jobs(jobs, registry, resume)
    outcomes = {o.key: o for o in skipped}
    sized = request.sized(len(todo))
    if todo:
        # Ray prints worker-death notices on stdout; stdout is for the outcomes this returns
        with ray_session(sized) as cluster, redirect_stdout(sys.stderr):
            check_shared_registry(db_url, cluster)
            outcomes.update(_run(todo, sized, db_url, outcomes, console))
    return [outcomes[job.key] for job in jobs]


def _run(
    todo: list[TrainJob],
    request: ClusterRequest,
    db_url: str,
    done: dict[str, JobOutcome],
    console: Console,
) -> dict[str, JobOutcome]:
    board = ProgressBoard.remote()  # type: ignore[attr-defined]
    for key, outcome in done.items():
        board.update.remote(key, {"status": outcome.status, "note": "completed before"})
    task = ray.remote(run_job).options(
        num_cpus=request.cpus_per_job,
        num_gpus=request.gpus_per_job,
        max_retries=0,  # a dead worker is reported, not silently retried from scratch
        name="forex-diffusion-train",
    )
    threads = max(1, int(request.cpus_per_job))
    pending = {task.remote(job, db_url, board, threads): job for job in todo}
    keys = [*done, *(job.key for job in todo)]
    started = time.monotonic()
    results: dict[str, JobOutcome] = {}

    def table() -> Any:
        rows = ray.get(board.snapshot.remote())
        return progress_table(keys, rows, started, "forex-diffusion train-many")

    with Live(table(), console=console, auto_refresh=False) as live:
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    job = pending.pop(ref)
                    outcome = _collect(ref, job, board, db_url)
                    results[job.key] = outcome
                    board.update.remote(
                        job.key, {"status": outcome.status, "note": outcome.error or ""}
                    )
                live.update(table(), refresh=True)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)
            for job in pending.values():
                results[job.key] = _orphaned(job, board, db_url, "interrupted", "driver Ctrl-C")
            raise
        finally:
            live.update(table(), refresh=True)
    return results


def _collect(ref: Any, job: TrainJob, board: Any, db_url: str) -> JobOutcome:
    try:
        outcome: JobOutcome = ray.get(ref)
        return outcome
    except RayTaskError as exc:  # the training raised
        cause = exc.cause if exc.cause is not None else exc
        return _orphaned(job, board, db_url, "failed", f"{type(cause).__name__}: {cause}")
    except RayError as exc:  # the worker or its node died
        return _orphaned(job, board, db_url, "interrupted", f"worker lost: {type(exc).__name__}")


def _orphaned(job: TrainJob, board: Any, db_url: str, status: str, message: str) -> JobOutcome:
    """The outcome of a job that returned nothing; closes the run it left ``running``."""
    row = ray.get(board.snapshot.remote()).get(job.key, {})
    run_id = row.get("run_id")
    if run_id is not None:
        with Registry(db_url) as registry:
            close_orphaned_run(registry, int(run_id), status, message)
    return JobOutcome(job.key, status, run_id=run_id, error=message)
