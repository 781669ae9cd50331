"""Small Lightning callbacks of the trainer: per-epoch seeding (exact resume), CUDA cache
clearing, the per-epoch metrics line and the step progress lines of the run log."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from loguru import logger

_LOGGED = ("train_loss", "val_loss", "val_coverage90", "val_crps")


class EpochSeed(Callback):
    """Reseed torch at every epoch start from (seed, epoch), so a run resumed at an epoch
    boundary draws exactly the same noise, timesteps and dropout masks as an uninterrupted one."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # each rank of a distributed fit its own stream (rank 0's is the single-process one)
        torch.manual_seed(self.seed * 100_003 + trainer.current_epoch + 7_919 * trainer.global_rank)


class StartPoint(Callback):
    """Where this process's fit started and how much it did: proof that a resume continued.

    Recorded at train start (after Lightning restored a checkpoint): epoch, global step, the
    optimizer's own step count and the LR scheduler's position; then the batches trained here.
    """

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.global_step: int | None = None
        self.optimizer_step: int | None = None
        self.scheduler_last_epoch: int | None = None
        self.batches_run = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch, self.global_step = int(trainer.current_epoch), int(trainer.global_step)
        steps = [
            int(state["step"]) for opt in trainer.optimizers for state in opt.state.values()
            if "step" in state
        ]  # fmt: skip
        self.optimizer_step = max(steps) if steps else 0
        configs = trainer.lr_scheduler_configs
        self.scheduler_last_epoch = int(configs[0].scheduler.last_epoch) if configs else None

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.batches_run += 1

    def as_dict(self) -> dict[str, int | None]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "optimizer_step": self.optimizer_step,
            "scheduler_last_epoch": self.scheduler_last_epoch,
            "batches_run": self.batches_run,
        }


class CudaCacheClear(Callback):
    """``torch.cuda.empty_cache()`` every ``every`` epochs (no-op on CPU)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if torch.cuda.is_available() and (trainer.current_epoch + 1) % self.every == 0:
            torch.cuda.empty_cache()


class EpochMetricsLog(Callback):
    """Logs ``epoch N: train_loss=…, val_loss=…, val_coverage90=…, val_crps=…`` after each
    validation (not the sanity check)."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = float_metrics(trainer.callback_metrics)
        shown = ", ".join(f"{k}={metrics[k]:.5f}" for k in _LOGGED if k in metrics)
        logger.info(f"epoch {trainer.current_epoch}: {shown}")


def float_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics that convert to a float (one-element tensors, numbers); others are left out."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class StepProgress(Callback):
    """Logs ``step N: batch i/n of epoch e`` at most every ``every_s`` seconds and at the last
    batch of an epoch (the service's jobs read their live progress from these lines)."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.every_s = every_s
        self._last = 0.0

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        now = time.monotonic()
        total = trainer.num_training_batches
        last = isinstance(total, int) and batch_idx + 1 == total
        if now - self._last < self.every_s and not last:
            return
        self._last = now
        logger.info(
            f"step {trainer.global_step}: batch {batch_idx + 1}/{total} "
            f"of epoch {trainer.current_epoch}"
        )
