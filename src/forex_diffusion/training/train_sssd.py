"""``SSSDTrainer``: turns an ``SSSDDataModule`` into a trained, registered model.

Usage (the same command as ``forex-diffusion train``, SPEC §2)::

    python -m forex_diffusion.training.train_sssd --config configs/sssd/default_config.yaml \
        --asset-config configs/sssd/eurusd_config.yaml --override training.epochs=100 training.batch_size=64
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import _get_rank
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from loguru import logger

from forex_diffusion.config.sssd_config import SSSDConfig
from forex_diffusion.errors import CheckpointError
from forex_diffusion.registry import Registry, open_registry
from forex_diffusion.training.callbacks import (
    CudaCacheClear,
    EpochMetricsLog,
    EpochSeed,
    StartPoint,
    StepProgress,
    float_metrics,
)
from forex_diffusion.training.checkpointing import AtomicCheckpointIO, RunCheckpoints
from forex_diffusion.training.data_module import SSSDDataModule
from forex_diffusion.training.lightning_module import SSSDLightningModule
from forex_diffusion.training.mlflow_tracking import ENV_MLFLOW_URI, mlflow_logging
from forex_diffusion.training.run_recorder import RegistryRunRecorder, RunInfo


@dataclass
class TrainingResult:
    """What a finished (or stopped) training run produced."""

    status: str
    run_id: int
    model_id: int
    checkpoint_dir: Path
    best_checkpoint: Path | None
    final_checkpoint: Path | None
    best_val_loss: float | None
    epochs_completed: int
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    resumed_from: Path | None = None
    start: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> str:
        """Indented JSON of every field (paths as strings): what the train commands print."""
        return json.dumps(
            {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}, indent=2
        )


def resolve_precision(setting: str, accelerator: str) -> str:
    """``auto`` → bf16-mixed on bf16-capable GPUs, 16-mixed on older GPUs, 32 on CPU.

    SPEC §5 names bf16 on CPU; measured (benchmarks/bench_train.py, issue 17's notes), a
    cpu_small training step under bf16 autocast is several times slower than fp32 on a CPU
    without AVX512-BF16 and barely faster on one with AMX (the FFTs and elementwise work stay in
    fp32), so ``auto`` keeps fp32 on CPU; ``bf16-mixed`` can still be asked for.
    """
    if setting != "auto":
        return setting
    if accelerator == "gpu":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32"


class SSSDTrainer:
    """Lightning-based trainer of one SSSD model per asset (SPEC §5)."""

    def __init__(
        self,
        config: SSSDConfig,
        registry: Registry | None = None,
        accelerator: str = "auto",
        callbacks: Sequence[Callback] = (),
        init_weights: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """``callbacks`` are added to the trainer's own (e.g. a hyperparameter search's
        per-epoch reporter); ``training.devices``/``num_nodes``/``strategy`` go to Lightning.
        ``init_weights``: start from these weights instead of a fresh initialisation (a
        fine-tune; see ``models.init_from``)."""
        self.config = config
        self.init_weights = init_weights
        self.registry = registry or open_registry(config)
        if accelerator == "auto":
            accelerator = "gpu" if torch.cuda.is_available() else "cpu"
        self.accelerator = accelerator
        self.extra_callbacks = list(callbacks)

    @property
    def checkpoint_dir(self) -> Path:
        return (
            Path(self.config.paths.checkpoint_dir)
            / self.config.asset.symbol
            / self.config.model.name
        )

    @property
    def log_dir(self) -> Path:
        return Path(self.config.paths.log_dir) / self.config.asset.symbol / self.config.model.name

    def train(self, data_module: SSSDDataModule, resume: bool = False) -> TrainingResult:
        """Fit the model; checkpoints, TensorBoard logs and registry rows are written as it goes.

        Args:
            data_module: an ``SSSDDataModule`` built from the same config.
            resume: continue from ``last.ckpt`` of this asset/model when it exists.
        """
        L.seed_everything(self.config.seed, workers=True, verbose=False)
        module = self._lightning_module(data_module)
        model_id = self.registry.register_from_config(self.config).id
        checkpoints = RunCheckpoints.create(
            self._make_checkpoint_dir(), self.config.training.checkpoint
        )
        run_name = time.strftime("%Y%m%d-%H%M%S")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        rank = _get_rank() or 0  # set in each process of a distributed run (torchrun, Lightning)
        log_path = self.log_dir / (f"{run_name}.log" if rank == 0 else f"{run_name}.rank{rank}.log")
        sink = logger.add(log_path, level="INFO")
        mlflow_env = os.environ.get(ENV_MLFLOW_URI)
        try:
            recorder = RegistryRunRecorder(
                self.registry, model_id, self._run_info(run_name, log_path), checkpoints.best_path
            )
            start = StartPoint()
            trainer = self._lightning_trainer(run_name, checkpoints, recorder, start)
            ckpt_path = self._resume_path(resume, checkpoints.last_path)
            self._log_start(data_module)
            started = time.monotonic()
            self._fit(trainer, module, data_module, ckpt_path, recorder)
            duration = time.monotonic() - started
            self._log_end(recorder, checkpoints, duration)
        finally:
            logger.remove(sink)
            # MLflow writes its URI into os.environ; a later run of this process must not
            # inherit this run's tracking
            if mlflow_env is None:
                os.environ.pop(ENV_MLFLOW_URI, None)
            else:
                os.environ[ENV_MLFLOW_URI] = mlflow_env
        result = self._result(trainer, recorder, checkpoints, model_id, duration)
        return replace(
            result,
            resumed_from=Path(ckpt_path) if ckpt_path else None,
            start=start.as_dict(),
        )

    # ------------------------------------------------------------------ steps of ``train``
    def _lightning_module(self, data_module: SSSDDataModule) -> SSSDLightningModule:
        data_module.setup("fit")
        module = SSSDLightningModule(
            self.config,
            data_module.input_dims,
            feature_names=data_module.feature_names,
            standardizer=data_module.standardizer_payload(),
        )
        if self.init_weights is not None:
            try:
                module.model.load_state_dict(self.init_weights, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(
                    f"the initial weights do not fit this model ({exc}); the features or "
                    "window shapes differ from the model they came from"
                ) from exc
        return module

    def _make_checkpoint_dir(self) -> Path:
        directory = self.checkpoint_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(
                f"cannot create checkpoint folder {directory}: {exc.strerror or exc}"
            ) from exc
        return directory

    def _run_info(self, run_name: str, log_path: Path) -> RunInfo:
        return RunInfo(
            run_name=run_name,
            data_range=self.config.data.splits.model_dump(mode="json"),
            hyperparameters=self.config.training.model_dump(mode="json"),
            device=self.accelerator,
            log_path=log_path,
        )

    def _callbacks(
        self, checkpoints: RunCheckpoints, recorder: RegistryRunRecorder, start: StartPoint
    ) -> list[Callback]:
        tcfg = self.config.training
        early = EarlyStopping(
            monitor="val_loss",
            patience=tcfg.early_stopping.patience,
            min_delta=tcfg.early_stopping.min_delta,
            mode="min",
        )
        return [
            EpochSeed(self.config.seed),
            EpochMetricsLog(),
            StepProgress(),
            early,
            CudaCacheClear(tcfg.cuda_empty_cache_every),
            LearningRateMonitor(logging_interval="step"),
            recorder,
            start,
            *checkpoints.callbacks(),
        ]

    def _lightning_trainer(
        self,
        run_name: str,
        checkpoints: RunCheckpoints,
        recorder: RegistryRunRecorder,
        start: StartPoint,
    ) -> L.Trainer:
        tcfg = self.config.training
        loggers: list[Logger] = [
            TensorBoardLogger(save_dir=str(self.log_dir), name="tensorboard", version=run_name)
        ]
        callbacks = [*self._callbacks(checkpoints, recorder, start), *self.extra_callbacks]
        tracking = mlflow_logging(self.config, run_name, checkpoints.best_path)
        if tracking is not None:
            loggers.append(tracking.logger)
            callbacks.append(tracking.callback)
        return L.Trainer(
            accelerator=self.accelerator,
            devices=tcfg.devices,
            num_nodes=tcfg.num_nodes,
            strategy=tcfg.strategy,
            # the data module shards the training epoch by rank itself (EpochShuffleSampler)
            use_distributed_sampler=False,
            max_epochs=tcfg.epochs,
            precision=resolve_precision(tcfg.precision, self.accelerator),  # type: ignore[arg-type]
            gradient_clip_val=tcfg.gradient_clip,
            accumulate_grad_batches=tcfg.accumulate_grad_batches,
            limit_train_batches=tcfg.max_train_batches_per_epoch or 1.0,
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO(listener=recorder)],
            logger=loggers,
            enable_checkpointing=True,
            enable_progress_bar=sys.stderr.isatty(),
            enable_model_summary=False,
            num_sanity_val_steps=0,
            deterministic=False,
            log_every_n_steps=10,
        )

    @staticmethod
    def _resume_path(resume: bool, last: Path) -> str | None:
        if not resume:
            return None
        if not last.is_file():
            logger.warning(f"--resume: no {last} yet; starting from scratch")
            return None
        return str(last)

    def _log_start(self, data_module: SSSDDataModule) -> None:
        cfg = self.config
        logger.info(
            f"training {cfg.asset.symbol}/{cfg.model.name}: "
            f"precision={resolve_precision(cfg.training.precision, self.accelerator)}, "
            f"train samples={len(data_module.train_dataset)}, "
            f"val samples={len(data_module.val_dataset)}"
        )

    @staticmethod
    def _fit(
        trainer: L.Trainer,
        module: SSSDLightningModule,
        data_module: SSSDDataModule,
        ckpt_path: str | None,
        recorder: RegistryRunRecorder,
    ) -> None:
        """``trainer.fit``; returns normally when the run completed or was interrupted."""
        sigint = signal.getsignal(signal.SIGINT)
        try:
            trainer.fit(module, datamodule=data_module, ckpt_path=ckpt_path, weights_only=True)
        except SystemExit:
            # Lightning ends a SIGTERM-ed or Ctrl-C-ed fit with SystemExit after on_exception
            # (where the recorder marked the run interrupted); any other exit goes on
            if recorder.status != "interrupted":
                raise
            if signal.getsignal(signal.SIGINT) != sigint:  # Lightning leaves Ctrl-C ignored
                with suppress(ValueError):
                    signal.signal(signal.SIGINT, sigint)

    @staticmethod
    def _log_end(
        recorder: RegistryRunRecorder, checkpoints: RunCheckpoints, duration: float
    ) -> None:
        if recorder.status == "interrupted":
            logger.warning(
                f"training interrupted; resume with --resume from {checkpoints.last_path}"
            )
        logger.info(
            f"training {recorder.status} in {duration:.1f}s; "
            f"best val_loss {checkpoints.best_score()}"
        )

    @staticmethod
    def _result(
        trainer: L.Trainer,
        recorder: RegistryRunRecorder,
        checkpoints: RunCheckpoints,
        model_id: int,
        duration: float,
    ) -> TrainingResult:
        if recorder.run_id is None:
            raise RuntimeError("the training run was never started in the registry")
        best, final = checkpoints.best_path, checkpoints.final.path
        completed = recorder.status == "completed"
        return TrainingResult(
            status=recorder.status,
            run_id=recorder.run_id,
            model_id=model_id,
            checkpoint_dir=checkpoints.directory,
            best_checkpoint=best if best.is_file() else None,
            final_checkpoint=final if completed and final.is_file() else None,
            best_val_loss=checkpoints.best_score(),
            epochs_completed=int(trainer.current_epoch),
            duration_s=duration,
            metrics=float_metrics(trainer.callback_metrics),
        )


def train_from_config(
    config: SSSDConfig,
    resume: bool = False,
    data_dir: str | Path | None = None,
    *,
    registry: Registry | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainingResult:
    """Build the data module from the store and train (the train command's body, also run by
    each job of ``train-many`` and each trial of ``tune``).

    Args:
        registry: where the model, run and checkpoints are recorded (default: the config's).
        callbacks: extra Lightning callbacks for the trainer.
    """
    from forex_diffusion.data.store import resolve_data_dir

    data_module = SSSDDataModule(data_path=resolve_data_dir(config, data_dir), config=config)
    trainer = SSSDTrainer(config, registry=registry, callbacks=callbacks)
    return trainer.train(data_module, resume=resume)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m forex_diffusion.training.train_sssd ARGS`` runs ``forex-diffusion train ARGS``.

    The only translation: ``--override a=1 b=2`` (several values after one flag, SPEC §2)
    becomes ``--override a=1 --override b=2``. Exits with the command's status.
    """
    # the console command sits above training; this entry point alone reaches up to it
    import typer

    from forex_diffusion.cli.train_cmd import train

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train)
    args = list(sys.argv[1:] if argv is None else argv)
    app(args=repeat_override_flags(args), prog_name="python -m forex_diffusion.training.train_sssd")


def repeat_override_flags(args: Sequence[str]) -> list[str]:
    """``--override a=1 b=2`` → ``--override a=1 --override b=2`` (also for ``-o``)."""
    out: list[str] = []
    values: int | None = None  # values seen after the current --override, None outside one
    for arg in args:
        if arg in ("--override", "-o"):
            out.append(arg)
            values = 0
        elif values is not None and not arg.startswith("-"):
            out += [arg] if values == 0 else ["--override", arg]
            values += 1
        else:
            values = None
            out.append(arg)
    return out


if __name__ == "__main__":
    main()
