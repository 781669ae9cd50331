"""Live per-job progress: a Ray actor the workers report to, the Lightning callback that
reports, and the rich table the driver draws."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import ray
from lightning.pytorch.callbacks import Callback
from rich.table import Table

from forex_diffusion.training.callbacks import float_metrics
from forex_diffusion.training.run_recorder import RegistryRunRecorder


@ray.remote(num_cpus=0)
class ProgressBoard:
    """``{job key: {field: value}}`` written by the workers, read by the driver."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def update(self, key: str, fields: dict[str, Any]) -> None:
        self.rows.setdefault(key, {}).update(fields)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.rows.items()}


class ProgressReporter(Callback):
    """Tells the board (rank 0 only) the run id when the fit starts and the metrics after each
    validation. ``board`` is a ``ProgressBoard`` actor handle."""

    def __init__(self, board: Any, key: str) -> None:
        self.board = board
        self.key = key

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        run_ids = [cb.run_id for cb in run_recorders(trainer)]
        self.board.update.remote(
            self.key,
            {
                "status": "running",
                "run_id": run_ids[0] if run_ids else None,
                "epochs": trainer.max_epochs,
                "epoch": trainer.current_epoch,
            },
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = float_metrics(trainer.callback_metrics)
        self.board.update.remote(
            self.key,
            {
                "epoch": trainer.current_epoch + 1,
                "val_loss": metrics.get("val_loss"),
                "val_crps": metrics.get("val_crps"),
            },
        )


def run_recorders(trainer: L.Trainer) -> list[RegistryRunRecorder]:
    """The registry recorders among the trainer's callbacks (one per training run)."""
    callbacks = getattr(trainer, "callbacks", ())
    return [cb for cb in callbacks if isinstance(cb, RegistryRunRecorder)]


def _num(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def progress_table(
    keys: list[str], rows: dict[str, dict[str, Any]], started: float, title: str
) -> Table:
    """One line per job: status, epochs done, latest val_loss / val_crps, run id, note."""
    table = Table(title=f"{title} ({time.monotonic() - started:.0f}s)")
    for column in ("job", "status", "epoch", "val_loss", "val_crps", "run", "note"):
        table.add_column(column)
    for key in keys:
        row = rows.get(key, {})
        epochs = row.get("epochs")
        epoch = "" if row.get("epoch") is None else f"{row['epoch']}/{epochs or '?'}"
        run_id = row.get("run_id")
        table.add_row(
            key,
            str(row.get("status", "pending")),
            epoch,
            _num(row.get("val_loss")),
            _num(row.get("val_crps")),
            "" if run_id is None else str(run_id),
            str(row.get("note", ""))[:60],
        )
    return table
