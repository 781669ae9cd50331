"""``tune``: Ray Tune trials of the ``train`` function, proposed by Optuna (TPE) and stopped
early by ASHA on the validation CRPS; every trial is a model and a run in the registry."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from forex_diffusion.config.sssd_config import SSSDConfig, config_from_dict
from forex_diffusion.errors import ConfigError
from forex_diffusion.registry import Registry
from forex_diffusion.scale.cluster import ClusterRequest, check_shared_registry, ray_session
from forex_diffusion.scale.jobs import close_orphaned_run
from forex_diffusion.scale.progress import run_recorders
from forex_diffusion.scale.search_space import SearchSpace, apply_params
from forex_diffusion.steps import Advance, Steps, silent_steps
from forex_diffusion.training.callbacks import float_metrics

METRIC = "val_crps"  # logged by SSSDLightningModule after every validation


class TuneReport(Callback):
    """Reports ``val_crps`` (and val_loss, the epoch, the registry run id) to Tune after every
    validation, rank 0 only.

    When the scheduler stops the trial, ``tune.report`` raises ``SystemExit`` in the trial's
    thread: the run is then closed as ``interrupted`` (stopped by ASHA) before the exit goes on.
    """

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        from ray import tune

        metrics = float_metrics(trainer.callback_metrics)
        recorders = run_recorders(trainer)
        epoch = trainer.current_epoch + 1
        report = {
            METRIC: metrics[METRIC],
            "val_loss": metrics.get("val_loss"),
            "epoch": epoch,
            "run_id": recorders[0].run_id if recorders else None,
        }
        try:
            tune.report(report)
        except SystemExit:
            for recorder in recorders:
                recorder.mark_interrupted(pruned_message(epoch))
            raise


def pruned_message(epochs: int) -> str:
    return f"stopped by the ASHA scheduler after {epochs} epoch(s)"


@dataclass(frozen=True)
class TuneRequest:
    """What to search: the base configuration, the space, how many trials, where."""

    base: SSSDConfig
    space: SearchSpace
    trials: int
    data_dir: str
    db_url: str
    cluster: ClusterRequest = field(default_factory=ClusterRequest)
    grace_period: int = 1
    reduction_factor: float = 2.0
    max_concurrent: int | None = None
    seed: int = 0


@dataclass
class TrialOutcome:
    trial_id: str
    model_name: str
    params: dict[str, Any]
    status: str  # completed | pruned | failed
    epochs: int
    val_crps: float | None
    run_id: int | None
    error: str | None = None


@dataclass
class TuneOutcome:
    study: str
    trials: list[TrialOutcome]
    best: TrialOutcome | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def pruned(self) -> int:
        return sum(t.status == "pruned" for t in self.trials)


@dataclass
class TrialTally:
    """The best val_crps among the trials finished so far: each trial's last reported value,
    as :func:`run_tune` chooses the best."""

    best: float | None = None
    best_trial: str | None = None

    def finished(self, trial_id: str, last_result: Mapping[str, Any]) -> str:
        """Count a finished trial (completed or stopped by ASHA); returns :meth:`note`."""
        raw = last_result.get(METRIC)
        crps = math.nan if raw is None else float(raw)
        if math.isfinite(crps) and (self.best is None or crps < self.best):
            self.best, self.best_trial = crps, trial_id
        return self.note()

    def note(self) -> str:
        """``best val_crps 0.00123 (trial 5f2e1_00003)``, or that none reported one yet."""
        if self.best is None:
            return "no val_crps reported yet"
        return f"best val_crps {self.best:.6g} (trial {self.best_trial})"


def _trial_progress(advance: Advance) -> Any:
    """A Ray Tune callback (run by the driver) that reports every finished trial to
    ``advance``, noting the best val_crps so far."""
    from ray import tune

    class TrialProgress(tune.Callback):  # type: ignore[misc]
        def __init__(self, advance: Advance) -> None:
            self.tally = TrialTally()
            self.advance: Advance | None = advance

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its run config (tuner.pkl); the progress display stays here
            return {"tally": self.tally, "advance": None}

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            note = self.tally.finished(str(trial.trial_id), trial.last_result or {})
            if self.advance is not None:
                self.advance(f"trial {trial.trial_id}", note)

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            if self.advance is not None:
                self.advance(f"trial {trial.trial_id} failed", self.tally.note())

    return TrialProgress(advance)


def trial_model_name(base: SSSDConfig, study: str, trial_id: str) -> str:
    return f"{base.model.name}.{study}.{trial_id}"


def trial_config(base: SSSDConfig, params: dict[str, Any], study: str, trial_id: str) -> SSSDConfig:
    """The base configuration with the trial's values and its own model name."""
    return apply_params(base, params).with_overrides(
        [f"model.name={trial_model_name(base, study, trial_id)}"]
    )


def run_trial(
    params: dict[str, Any],
    *,
    base: dict[str, Any],
    study: str,
    data_dir: str,
    db_url: str,
    threads: int,
) -> None:
    """One Tune trial: the ``train`` function on the trial's configuration."""
    import torch
    from ray import tune

    from forex_diffusion.allocator import keep_freed_memory
    from forex_diffusion.training.train_sssd import train_from_config

    torch.set_num_threads(max(1, threads))
    keep_freed_memory()  # as the command line does
    trial_id = tune.get_context().get_trial_id()
    config = trial_config(config_from_dict(base, "tune base"), params, study, trial_id)
    with Registry(db_url) as registry:
        train_from_config(config, data_dir=data_dir, registry=registry, callbacks=[TuneReport()])


def run_tune(request: TuneRequest, steps: Steps = silent_steps) -> TuneOutcome:
    """Search; returns every trial's outcome and the best (lowest final val_crps reported).
    ``steps`` reports each finished trial (one step each) with the best val_crps so far.

    Raises:
        ConfigError: the configuration logs no val_crps (training.val_forecast_samples=0),
            Ray missing, or a SQLite registry with workers on other hosts.
    """
    base = request.base
    if base.training.val_forecast_samples == 0:
        raise ConfigError("tune optimises val_crps, which needs training.val_forecast_samples > 0")
    study = f"tune{time.strftime('%Y%m%d%H%M%S')}"
    # Tune reports its progress on stdout; stdout is for the summary this returns
    with ray_session(request.cluster) as cluster, redirect_stdout(sys.stderr):
        check_shared_registry(request.db_url, cluster)
        with steps(f"tune {study}: trials", request.trials) as advance:
            results = _fit(request, study, advance)
    with Registry(request.db_url) as registry:
        trials = [_trial_outcome(r, base, study, request, registry) for r in results]
    scored = [t for t in trials if t.val_crps is not None]
    best = min(scored, key=lambda t: float(t.val_crps or 0.0)) if scored else None
    return TuneOutcome(study, trials, best)


def _fit(request: TuneRequest, study: str, advance: Advance) -> Any:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    epochs = request.base.training.epochs
    trainable = tune.with_parameters(
        run_trial,
        base=request.base.to_dict(),
        study=study,
        data_dir=request.data_dir,
        db_url=request.db_url,
        threads=max(1, int(request.cluster.cpus_per_job)),
    )
    resources = {"cpu": request.cluster.cpus_per_job, "gpu": request.cluster.gpus_per_job}
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        # one beyond the last epoch: a trial that survives every rung ends by itself (its run
        # completed, final checkpoint written) rather than being stopped for reaching max_t
        max_t=epochs + 1,
        grace_period=min(request.grace_period, epochs),
        reduction_factor=request.reduction_factor,
    )
    storage = Path(request.base.paths.artifacts_dir).expanduser().absolute() / "tune"
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space=request.space.tune_space(),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="min",
            search_alg=OptunaSearch(seed=request.seed),
            scheduler=scheduler,
            num_samples=request.trials,
            max_concurrent_trials=request.max_concurrent,
        ),
        run_config=tune.RunConfig(
            name=study,
            storage_path=str(storage),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
            callbacks=[_trial_progress(advance)],
        ),
    )
    return tuner.fit()


def _trial_outcome(
    result: Any, base: SSSDConfig, study: str, request: TuneRequest, registry: Registry
) -> TrialOutcome:
    """One trial's outcome; its registry run says how it ended. A run still ``running`` lost
    its worker when Tune stopped the trial before the run could be closed: it is closed here."""
    metrics = dict(result.metrics or {})
    trial_id = str(metrics.get("trial_id") or Path(result.path).name.split("_")[2])
    epochs = int(metrics.get("training_iteration") or 0)
    raw_run = metrics.get("run_id")
    run_id = None if raw_run is None else int(raw_run)
    run_status = None
    if run_id is not None:
        close_orphaned_run(registry, run_id, "interrupted", pruned_message(epochs))
        run_status = registry.get_run(run_id).status
    if result.error is not None or run_status in (None, "failed"):
        status = "failed"
    elif run_status == "interrupted":
        status = "pruned"
    else:
        status = "completed"
    crps = metrics.get(METRIC)
    return TrialOutcome(
        trial_id=trial_id,
        model_name=trial_model_name(base, study, trial_id),
        params={k: result.config[k] for k in request.space.dimensions},
        status=status,
        epochs=epochs,
        val_crps=None if crps is None else float(crps),
        run_id=run_id,
        error=None if result.error is None else str(result.error).splitlines()[0][:300],
    )


def export_best(outcome: TuneOutcome, base: SSSDConfig, path: Path) -> SSSDConfig:
    """Write the best trial's configuration as a config YAML (loads with ``load_sssd_config``
    as the defaults or as an asset config) and return it.

    Raises:
        ConfigError: no trial reported a val_crps.
    """
    if outcome.best is None:
        raise ConfigError(f"study {outcome.study}: no trial reported {METRIC}; nothing to export")
    best = outcome.best
    config = trial_config(base, best.params, outcome.study, best.trial_id)
    header = (
        f"# best of tune study {outcome.study}: trial {best.trial_id}, "
        f"{METRIC}={best.val_crps:.6g} after {best.epochs} epochs\n"
        f"# searched: {', '.join(f'{k}={v!r}' for k, v in sorted(best.params.items()))}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + config.to_yaml(), encoding="utf-8")
    return config
