"""Lightning callback that records a training run and its checkpoint files in the registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from loguru import logger

from forex_diffusion.registry import Registry
from forex_diffusion.training.callbacks import float_metrics

RunStatus = Literal["pending", "running", "completed", "failed", "interrupted"]


@dataclass(frozen=True)
class RunInfo:
    """What the registry stores about a run when it starts."""

    run_name: str
    data_range: dict[str, Any]
    hyperparameters: dict[str, Any]
    device: str
    log_path: Path


class RegistryRunRecorder(Callback):
    """The run's registry row and its checkpoint rows.

    ``running`` when Lightning sets up the fit; ``completed`` once it has ended normally (after
    ``final.ckpt``); ``interrupted`` on SIGTERM (Lightning's ``SIGTERMException``) or Ctrl-C;
    ``failed`` with the error message on any other exception. In a distributed fit only global
    rank 0 writes to the registry (the run id is broadcast to the other ranks). As a ``CheckpointListener`` of
    ``AtomicCheckpointIO`` it records each checkpoint file once it is written (``best_path``
    flagged as the best) with the current metrics. The best epoch is kept in checkpoints, so a
    resumed run reports the right one.
    """

    def __init__(self, registry: Registry, model_id: int, info: RunInfo, best_path: Path) -> None:
        self.registry = registry
        self.model_id = model_id
        self.info = info
        self.best_path = best_path.resolve()
        self.run_id: int | None = None
        self.status: RunStatus = "pending"
        self.best_epoch: int | None = None
        self._trainer: L.Trainer | None = None

    # ------------------------------------------------------------------ run status
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self.run_id is not None:
            return
        self._trainer = trainer
        run_id = None
        if trainer.is_global_zero:  # one row per run, however many processes train it
            run_id = self.registry.start_run(
                model_id=self.model_id,
                run_name=self.info.run_name,
                data_range=self.info.data_range,
                hyperparameters=self.info.hyperparameters,
                device=self.info.device,
                log_path=str(self.info.log_path),
            ).id
        self.run_id = trainer.strategy.broadcast(run_id, src=0)  # rank 0's id on every rank
        self.status = "running"

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.run_id is None or self.status != "running":
            return
        if not trainer.is_global_zero:
            self.status = "completed"
            return
        metrics = float_metrics(trainer.callback_metrics)
        self.registry.complete_run(
            self.run_id,
            best_epoch=self.best_epoch,
            epochs=int(trainer.current_epoch),
            final_train_loss=metrics.get("train_loss"),
            final_val_loss=metrics.get("val_loss"),
        )
        self.status = "completed"

    def mark_interrupted(self, reason: str) -> None:
        """Close the run as ``interrupted`` now (e.g. stopped by a hyperparameter search's
        scheduler); the exception that ends the fit next is then not recorded as a failure."""
        if self.run_id is None or self.status != "running":
            return
        if self._trainer is None or self._trainer.is_global_zero:
            self.registry.interrupt_run(self.run_id, reason)
        self.status = "interrupted"

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if self.run_id is None or self.status != "running":
            return
        if isinstance(exception, SIGTERMException | KeyboardInterrupt):
            reason = "SIGTERM" if isinstance(exception, SIGTERMException) else "KeyboardInterrupt"
            self.mark_interrupted(f"interrupted ({reason})")
        else:
            writes = trainer.is_global_zero
            if writes:
                self.registry.fail_run(self.run_id, f"{type(exception).__name__}: {exception}")
            self.status = "failed"
            logger.error(f"training failed: {exception}")

    # ------------------------------------------------------------------ checkpoint files
    def checkpoint_saved(self, path: Path, checkpoint: dict[str, Any], size_bytes: int) -> None:
        if self._trainer is None:
            raise RuntimeError("RegistryRunRecorder: a checkpoint was written before the fit began")
        metrics = float_metrics(self._trainer.callback_metrics)
        epoch = int(checkpoint["epoch"])
        is_best = path.resolve() == self.best_path
        self.registry.record_checkpoint(
            model_id=self.model_id,
            path=str(path.resolve()),
            epoch=epoch,
            is_best=is_best,
            train_loss=metrics.get("train_loss"),
            val_loss=metrics.get("val_loss"),
            val_metrics=metrics,
            size_bytes=size_bytes,
        )
        if is_best:
            self.best_epoch = epoch
            val = metrics.get("val_loss", float("nan"))
            logger.info(f"epoch {epoch}: new best val_loss {val:.5f}")

    def checkpoint_removed(self, path: Path) -> None:
        self.registry.delete_checkpoint(str(path.resolve()))

    # Lightning stores this in every checkpoint, so that a resumed run keeps its best epoch
    def state_dict(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_epoch = state_dict.get("best_epoch")
