"""Which checkpoint files a training run writes, and how each is written.

Files in the run's checkpoint folder, all written by Lightning (``ModelCheckpoint`` and
``Trainer.save_checkpoint``) at the end of a training epoch, after its validation:

    best.ckpt          lowest ``val_loss`` so far
    epoch=NNN.ckpt     every ``training.checkpoint.every_n_epochs`` epochs (none with keep_best_only)
    last.ckpt          every epoch, for ``--resume``
    final.ckpt         once training has ended

Each is a full Lightning checkpoint (resumable with ``weights_only=True``) that
``SSSDLightningModule.on_save_checkpoint`` extends into a forex_diffusion checkpoint, written
atomically by ``AtomicCheckpointIO``, which tells a ``CheckpointListener`` (the registry recorder).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from forex_diffusion.config.sssd_config import CheckpointConfig
from forex_diffusion.errors import CheckpointError
from forex_diffusion.fileio import atomic_write

BEST = "best"
LAST = "last"
FINAL = "final"
EXTENSION = ModelCheckpoint.FILE_EXTENSION


class CheckpointListener(Protocol):
    """Told about every checkpoint file written or removed."""

    def checkpoint_saved(self, path: Path, checkpoint: dict[str, Any], size_bytes: int) -> None: ...

    def checkpoint_removed(self, path: Path) -> None: ...


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` through a temporary file and ``os.replace`` (``fileio.atomic_write``): a
    crash never leaves a half-written checkpoint; the listener hears of each file once it is in
    place."""

    def __init__(self, listener: CheckpointListener | None = None) -> None:
        self.listener = listener

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Raises CheckpointError naming the folder when it cannot be written (read-only,
        disk full); no partial file is left behind."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), fsync=True)
            size = path.stat().st_size
        except OSError as exc:
            raise CheckpointError(
                f"cannot write checkpoint {path}: {exc.strerror or exc} "
                f"(check that {path.parent} is writable and the disk has free space)"
            ) from exc
        if self.listener is not None:
            self.listener.checkpoint_saved(path, checkpoint, size)

    def remove_checkpoint(self, path: Any) -> None:
        super().remove_checkpoint(path)
        if self.listener is not None:
            self.listener.checkpoint_removed(Path(path))


class FinalCheckpoint(Callback):
    """Writes ``final.ckpt`` when training ends normally (max epochs or early stopping)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{FINAL}{EXTENSION}"

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)


@dataclass(frozen=True)
class RunCheckpoints:
    """The checkpoint callbacks of one run (see the module docstring for the files)."""

    directory: Path
    best: ModelCheckpoint
    last: ModelCheckpoint
    periodic: ModelCheckpoint | None
    final: FinalCheckpoint

    @classmethod
    def create(cls, directory: Path, config: CheckpointConfig) -> RunCheckpoints:
        """Best on val_loss, periodic unless ``keep_best_only``, last and final, all saved at
        the end of a training epoch (after its validation) so that a resume starts the next."""
        common: dict[str, Any] = {
            "dirpath": directory,
            "save_on_train_epoch_end": True,
            "enable_version_counter": False,
            "auto_insert_metric_name": False,
        }
        best = ModelCheckpoint(filename=BEST, monitor="val_loss", mode="min", **common)
        # "step" always rises: this keeps the latest file (and gives it its own state key)
        last = ModelCheckpoint(filename=LAST, monitor="step", mode="max", **common)
        periodic = None
        if not config.keep_best_only:
            periodic = ModelCheckpoint(
                filename="epoch={epoch:03d}",
                every_n_epochs=config.every_n_epochs,
                save_top_k=-1,
                **common,
            )
        return cls(directory, best, last, periodic, FinalCheckpoint(directory))

    def callbacks(self) -> list[Callback]:
        """In saving order: best, periodic, last (each epoch), final (at the end)."""
        saving = [self.best, self.periodic, self.last]
        return [*(cb for cb in saving if cb is not None), self.final]

    @property
    def best_path(self) -> Path:
        return self.directory / f"{BEST}{EXTENSION}"

    @property
    def last_path(self) -> Path:
        return self.directory / f"{LAST}{EXTENSION}"

    def best_score(self) -> float | None:
        """Lowest val_loss of the run so far (kept across a resume)."""
        score = self.best.best_model_score
        return None if score is None else float(score)
