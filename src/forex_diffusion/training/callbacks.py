"""Lightning callbacks of the trainer: atomic checkpoints recorded in the registry, per-epoch
seeding (exact resume), CUDA cache clearing, step progress lines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from loguru import logger

from forex_diffusion.errors import CheckpointError
from forex_diffusion.fileio import atomic_write
from forex_diffusion.models.checkpoint import checkpoint_payload
from forex_diffusion.models.sssd import SSSDModel
from forex_diffusion.registry.repository import Registry


def atomic_torch_save(obj: dict[str, Any], path: Path) -> int:
    """Write ``obj`` to ``path`` via a temp file in the same folder and ``os.replace``.

    Returns the file size. Raises CheckpointError naming the folder when it cannot be written
    (read-only, disk full); no partial file is left behind.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: torch.save(obj, tmp), fsync=True)
    except OSError as exc:
        raise CheckpointError(
            f"cannot write checkpoint {path}: {exc.strerror or exc} "
            f"(check that {path.parent} is writable and the disk has free space)"
        ) from exc
    return path.stat().st_size


class EpochSeed(Callback):
    """Reseed torch at every epoch start from (seed, epoch), so a run resumed at an epoch
    boundary draws exactly the same noise, timesteps and dropout masks as an uninterrupted one."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.manual_seed(self.seed * 100_003 + trainer.current_epoch)


class CudaCacheClear(Callback):
    """``torch.cuda.empty_cache()`` every ``every`` epochs (no-op on CPU)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if torch.cuda.is_available() and (trainer.current_epoch + 1) % self.every == 0:
            torch.cuda.empty_cache()


class SSSDCheckpoint(Callback):
    """Checkpoints after each validation: ``last.ckpt`` (always, for resume), ``best.ckpt``
    (lowest val_loss), ``epoch=NNN.ckpt`` every ``every_n_epochs``, ``final.ckpt`` at the end.

    Every file is a Lightning checkpoint (resumable with ``weights_only=True``) extended with
    the config, feature names, standardizer and versions, written atomically and recorded in
    the registry. With ``keep_best_only`` the periodic files are deleted (and unregistered)
    once written; ``last.ckpt`` stays so that an interrupted run can resume.
    """

    def __init__(
        self,
        directory: Path,
        registry: Registry,
        model_id: int,
        extra: dict[str, Any],
        every_n_epochs: int,
        keep_best_only: bool,
    ) -> None:
        self.directory = directory
        self.registry = registry
        self.model_id = model_id
        self.extra = extra
        self.every_n_epochs = every_n_epochs
        self.keep_best_only = keep_best_only
        self.best_val: float | None = None
        self.best_epoch: int | None = None

    # Lightning persists this in the checkpoint so that "best" survives a resume
    def state_dict(self) -> dict[str, Any]:
        return {"best_val": self.best_val, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_val = state_dict.get("best_val")
        self.best_epoch = state_dict.get("best_epoch")

    def _save(self, trainer: L.Trainer, name: str, is_best: bool) -> Path:
        path = self.directory / name
        ckpt = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        ckpt.update(checkpoint_payload(model=self._model(trainer), **self.extra))
        size = atomic_torch_save(ckpt, path)
        metrics = float_metrics(trainer.callback_metrics)
        self.registry.record_checkpoint(
            model_id=self.model_id,
            path=str(path.resolve()),
            epoch=int(trainer.current_epoch),
            is_best=is_best,
            train_loss=metrics.get("train_loss"),
            val_loss=metrics.get("val_loss"),
            val_metrics=metrics,
            size_bytes=size,
        )
        return path

    @staticmethod
    def _model(trainer: L.Trainer) -> SSSDModel:
        model = getattr(trainer.lightning_module, "model", None)
        if not isinstance(model, SSSDModel):
            raise TypeError("SSSDCheckpoint needs an SSSDLightningModule (with .model: SSSDModel)")
        return model

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = float_metrics(trainer.callback_metrics)
        val = metrics.get("val_loss")
        epoch = int(trainer.current_epoch)
        logger.info(
            f"epoch {epoch}: "
            + ", ".join(
                f"{k}={metrics[k]:.5f}"
                for k in ("train_loss", "val_loss", "val_coverage90", "val_crps")
                if k in metrics
            )
        )
        if val is not None and (self.best_val is None or val < self.best_val):
            self.best_val, self.best_epoch = val, epoch
            self._save(trainer, "best.ckpt", is_best=True)
            logger.info(f"epoch {epoch}: new best val_loss {val:.5f}")
        if (epoch + 1) % self.every_n_epochs == 0:
            periodic = self._save(trainer, f"epoch={epoch:03d}.ckpt", is_best=False)
            if self.keep_best_only:
                self.registry.delete_checkpoint(str(periodic.resolve()))
                periodic.unlink(missing_ok=True)
        # last.ckpt is written after Lightning has finished the epoch so that resume starts
        # the next one; see on_train_epoch_end

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, "last.ckpt", is_best=False)

    def save_final(self, trainer: L.Trainer) -> Path:
        return self._save(trainer, "final.ckpt", is_best=False)


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
