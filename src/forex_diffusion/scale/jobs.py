"""The jobs of ``train-many``: one per asset (× configuration), what each produced, and which
ones a ``--resume`` still has to run (the registry decides)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.errors import NotFoundError
from forex_diffusion.registry import Registry


@dataclass(frozen=True)
class TrainJob:
    """One training: the full configuration travels as a plain dict (validated again by the
    worker), the store path as the workers see it."""

    asset: str
    model_name: str
    config: dict[str, Any]
    data_dir: str | None = None
    resume: bool = False

    @property
    def key(self) -> str:
        return f"{self.asset}/{self.model_name}"

    @classmethod
    def from_config(
        cls, config: SSSDConfig, data_dir: str | None = None, resume: bool = False
    ) -> TrainJob:
        return cls(config.asset.symbol, config.model.name, config.to_dict(), data_dir, resume)


@dataclass
class JobOutcome:
    """What became of a job (``skipped``: already completed, left alone by ``--resume``)."""

    key: str
    status: str
    run_id: int | None = None
    best_checkpoint: str | None = None
    best_val_loss: float | None = None
    epochs_completed: int | None = None
    duration_s: float | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outcomes_json(outcomes: list[JobOutcome]) -> str:
    return json.dumps([o.to_dict() for o in outcomes], indent=2)


def latest_run_status(registry: Registry, asset: str, model_name: str) -> str | None:
    """Status of the newest run of asset/model, None when it never ran."""
    try:
        runs = registry.list_runs(asset=asset, model_name=model_name)
    except NotFoundError:
        return None
    return runs[0].status if runs else None


def plan_jobs(
    jobs: list[TrainJob], registry: Registry, resume: bool
) -> tuple[list[TrainJob], list[JobOutcome]]:
    """(jobs to run, outcomes of jobs left alone).

    Without ``resume`` every job runs from scratch. With it, a job whose newest run completed
    is skipped and every other one continues from its ``last.ckpt`` (or starts, if it has none).
    """
    if not resume:
        return jobs, []
    todo: list[TrainJob] = []
    skipped: list[JobOutcome] = []
    for job in jobs:
        if latest_run_status(registry, job.asset, job.model_name) == "completed":
            skipped.append(JobOutcome(job.key, "skipped"))
        else:
            todo.append(TrainJob(job.asset, job.model_name, job.config, job.data_dir, resume=True))
    return todo, skipped


def close_orphaned_run(registry: Registry, run_id: int, status: str, message: str) -> None:
    """Close a run its worker left ``running`` (the worker died): ``interrupted`` or ``failed``."""
    if registry.get_run(run_id).status != "running":
        return
    if status == "failed":
        registry.fail_run(run_id, message)
    else:
        registry.interrupt_run(run_id, message)
